"""Reference log-probs a run needs, computed once (and shared through the cache) before
the first step — or nothing at all for a reference-free loss."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from prefdelta.train.logprobs import EncodedPair
from prefdelta.train.losses import PreferenceLoss
from prefdelta.train.refcache import Item, RefCache, model_key


def slot_completions(
    pairs: Sequence[EncodedPair], loss: PreferenceLoss, i: int, prev: int
) -> list[list[int]]:
    """The completions ``loss`` scores for pair ``i`` (``prev``: the pair before it in its
    global batch, whose completions are KTO's mismatched ``kl_*`` slots)."""
    own, other = pairs[i], pairs[prev]
    table = {
        "chosen": own.chosen,
        "rejected": own.rejected,
        "kl_chosen": other.chosen,
        "kl_rejected": other.rejected,
    }
    return [list(table[s]) for s in loss.scores]


def previous_in_batch(batch: Sequence[int], i: int) -> int:
    """The pair before ``i`` in its global batch (cyclically): TRL's KL rotation."""
    return batch[(batch.index(i) - 1) % len(batch)]


def reference_items(pairs: Sequence[EncodedPair], batches: Sequence[Sequence[int]], loss) -> list[Item]:
    """Every (prompt, completion) the run will score with the reference, in a stable order."""
    items: list[Item] = [(p.prompt, p.chosen) for p in pairs] + [(p.prompt, p.rejected) for p in pairs]
    if loss.mismatched:
        for b in batches:
            for j, i in enumerate(b):
                prev = pairs[b[j - 1]]
                items += [(pairs[i].prompt, prev.chosen), (pairs[i].prompt, prev.rejected)]
    return items


def prepare_reference(
    accelerator,
    loss: PreferenceLoss,
    pairs: Sequence[EncodedPair],
    batches: Sequence[Sequence[int]],
    model_path: Path,
    root: Path | None,
    pad: int,
    max_tokens: int | None,
) -> RefCache | None:
    """The reference cache holding every log-prob the run needs: missing ones are computed
    on the main process with a separate copy of the student, then every process reloads.
    None for a reference-free loss (no reference model is loaded, no cache folder made)."""
    if not loss.needs_reference:
        return None
    from transformers import AutoModelForCausalLM

    items = reference_items(pairs, batches, loss)
    cache = RefCache(root, model_key(model_path))
    if not cache.missing(items):
        cache.reused += len(items)
        return cache
    if root is None and accelerator.num_processes > 1:
        raise ValueError("multi-process training needs a ref_cache_root to share reference log-probs")
    if accelerator.is_main_process:
        ref = AutoModelForCausalLM.from_pretrained(str(model_path), dtype=torch.float32)
        cache.compute(ref.to(accelerator.device), items, pad, max_tokens)
        del ref
    accelerator.wait_for_everyone()
    if not accelerator.is_main_process:
        cache.reload()
    return cache
