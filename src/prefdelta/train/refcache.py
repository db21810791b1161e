"""Reference log-probabilities, computed once per (reference model, sequence) and shared.

Every run of a study starts from the same reference model and draws on the same pair
pool, so the reference's summed completion log-probs are the same numbers in every run.
TRL's ``precompute_ref_log_probs`` computes them once *per run*; here they live in the
workspace (``cache/refcache/<model key>/<shard>.parquet``) and every later run — another
selection, β, seed or algorithm — only computes the sequences it has not seen.

A model's key hashes its weight and config files, so a changed model never reuses stale
numbers. Entries are keyed by a hash of ``(prompt ids, completion ids)``; shards are
written atomically, so a killed run loses at most the shard it was computing.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import torch

from prefdelta.hashing import file_hash, stable_hash
from prefdelta.train.batching import micro_batches
from prefdelta.train.logprobs import prefix_shared_logprobs
from prefdelta.workspace import atomic_write_bytes

Item = tuple[Sequence[int], Sequence[int]]


def model_key(model_dir: str | Path) -> str:
    """Hash of a ``save_pretrained`` folder's weights and config (not its tokenizer notes)."""
    files = sorted(
        p for p in Path(model_dir).iterdir() if p.suffix in {".safetensors", ".bin", ".json"} and p.is_file()
    )
    return stable_hash(*[(p.name, file_hash(str(p))) for p in files])


def item_key(prompt: Sequence[int], completion: Sequence[int]) -> str:
    return stable_hash(list(prompt), list(completion))


class RefCache:
    """Summed completion log-probs of one reference model, persisted under ``root``.

    ``root=None`` keeps them in memory only (one run).
    """

    def __init__(self, root: Path | None, key: str) -> None:
        self.dir = None if root is None else Path(root) / key
        self.values: dict[str, float] = {}
        self.computed = 0
        self.reused = 0
        if self.dir is not None and self.dir.is_dir():
            for shard in sorted(self.dir.glob("*.parquet")):
                df = pd.read_parquet(shard)
                self.values.update(zip(df["key"], df["logp"], strict=True))

    def missing(self, items: Sequence[Item]) -> list[Item]:
        seen: set[str] = set()
        out = []
        for p, c in items:
            k = item_key(p, c)
            if k not in self.values and k not in seen:
                seen.add(k)
                out.append((p, c))
        return out

    def compute(self, model, items: Sequence[Item], pad_id: int, max_tokens: int | None = 16384) -> None:
        """Compute the missing ``items`` with ``model`` (prompts shared) and persist them."""
        todo = self.missing(items)
        self.reused += len(items) - len(todo)
        if not todo:
            return
        by_prompt: dict[tuple[int, ...], list[Sequence[int]]] = {}
        for p, c in todo:
            by_prompt.setdefault(tuple(p), []).append(c)
        groups = [(list(p), cs[i : i + 4]) for p, cs in by_prompt.items() for i in range(0, len(cs), 4)]
        new: dict[str, float] = {}
        was_training = model.training
        model.eval()
        with torch.no_grad():
            lengths = [len(p) + max(len(c) for c in cs) * len(cs) for p, cs in groups]
            for mb in micro_batches(lengths, max_tokens):
                chunk = [groups[i] for i in mb]
                # prefix_shared_logprobs takes the same number of continuations per prompt
                for w in sorted({len(cs) for _, cs in chunk}):
                    same = [(p, cs) for p, cs in chunk if len(cs) == w]
                    lp = prefix_shared_logprobs(model, [p for p, _ in same], [cs for _, cs in same], pad_id)
                    for (p, cs), row in zip(same, lp.tolist(), strict=True):
                        for c, v in zip(cs, row, strict=True):
                            new[item_key(p, c)] = v
        model.train(was_training)
        self.values.update(new)
        self.computed += len(new)
        if self.dir is not None:
            buf = io.BytesIO()
            pd.DataFrame({"key": list(new), "logp": list(new.values())}).to_parquet(buf, index=False)
            atomic_write_bytes(self.dir / f"{uuid.uuid4().hex}.parquet", buf.getvalue())

    def reload(self) -> None:
        """Pick up shards written by another process (multi-process runs)."""
        if self.dir is not None and self.dir.is_dir():
            for shard in sorted(self.dir.glob("*.parquet")):
                df = pd.read_parquet(shard)
                self.values.update(zip(df["key"], df["logp"], strict=True))

    def get(self, items: Sequence[Item]) -> torch.Tensor:
        """Cached values of ``items`` as a float32 tensor (all must have been computed)."""
        return torch.tensor([self.values[item_key(p, c)] for p, c in items], dtype=torch.float32)
