"""Which pairs go into which optimizer step, process and forward pass.

Three layers, each a pure function of lengths and seeds:

- :func:`plan_batches`: the global batches of every epoch, shuffled by the seed alone, so
  a resumed run and a run on any number of processes see the same batches in the same
  order.
- :func:`shard`: the contiguous slice of a global batch that one process computes.
- :func:`micro_batches`: a process's slice cut into forwards of similar length under a
  token budget. Padding is what makes a padded batch slow (completions of 80–400 tokens
  padded to the longest waste ~40% of a forward); sorting by length inside the batch and
  cutting under a budget spends almost nothing on padding, and because the loss is
  reduced over the whole batch afterwards, the numbers are those of the unsplit batch.
"""

from __future__ import annotations

import random
from collections.abc import Sequence


def plan_batches(n: int, batch_size: int, epochs: int, seed: int, drop_last: bool = False) -> list[list[int]]:
    """Indices ``0..n-1`` shuffled per epoch (seeded) and cut into batches of ``batch_size``."""
    rng = random.Random(seed)
    batches: list[list[int]] = []
    for _ in range(epochs):
        order = list(range(n))
        rng.shuffle(order)
        for start in range(0, n, batch_size):
            batch = order[start : start + batch_size]
            if drop_last and len(batch) < batch_size:
                continue
            batches.append(batch)
    return batches


def shard(batch: Sequence[int], rank: int, world: int) -> list[int]:
    """The contiguous part of ``batch`` that process ``rank`` of ``world`` computes."""
    base, extra = divmod(len(batch), world)
    start = rank * base + min(rank, extra)
    return list(batch[start : start + base + (1 if rank < extra else 0)])


def micro_batches(lengths: Sequence[int], max_tokens: int | None) -> list[list[int]]:
    """Positions ``0..len(lengths)-1`` grouped into forwards of similar length.

    Sorted by length, then cut greedily so that ``len(group) * max(length in group)``
    (the padded size of the forward) stays within ``max_tokens``; a single example longer
    than the budget gets a forward of its own. ``None`` keeps one group (sorted).
    Typical budget: 4k–16k tokens on a CPU, 32k–128k on a GPU.
    """
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    if max_tokens is None:
        return [order] if order else []
    groups: list[list[int]] = []
    current: list[int] = []
    for i in order:
        if current and (len(current) + 1) * lengths[i] > max_tokens:
            groups.append(current)
            current = []
        current.append(i)
    if current:
        groups.append(current)
    return groups
