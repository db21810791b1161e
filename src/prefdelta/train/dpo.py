"""DPO on preference pairs given as text (the entry point the train stage uses).

Tokenizes with the exact prompt/completion boundary (:func:`.logprobs.encode_pairs`) and
runs :func:`.trainer.train_preference` with ``algorithm="dpo"``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path

from prefdelta.train.logprobs import TruncationReport, encode_pairs
from prefdelta.train.trainer import TrainHyper, train_preference

DPOHyper = TrainHyper
"""Kept for callers of the first version; every knob lives on :class:`TrainHyper`."""


def train_on_texts(
    model_path: str | Path,
    prompts: Sequence[str],
    chosen: Sequence[str],
    rejected: Sequence[str],
    hp: TrainHyper,
    out_dir: Path,
    progress: Callable[[int, int], None] | None = None,
    ref_cache_root: Path | None = None,
) -> tuple[dict[str, float], TruncationReport]:
    """Encode the pairs, train, and return the last metrics and the truncation report."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_path))
    pairs, _, report = encode_pairs(tokenizer, prompts, chosen, rejected, max_length=hp.max_length)
    last = train_preference(
        model_path,
        pairs,
        hp,
        Path(out_dir),
        ref_cache_root=ref_cache_root,
        on_step=None if progress is None else (lambda s, t, _m: progress(s, t)),
    )
    return last, report


def train_dpo(
    model_path: str | Path,
    prompts: Sequence[str],
    chosen: Sequence[str],
    rejected: Sequence[str],
    hp: TrainHyper,
    out_dir: Path,
    progress: Callable[[int, int], None] | None = None,
    ref_cache_root: Path | None = None,
) -> dict[str, float]:
    """Train ``model_path`` with DPO on the pairs; writes ``out_dir/final`` and ``metrics.jsonl``."""
    hp = dataclasses.replace(hp, algorithm="dpo")
    return train_on_texts(model_path, prompts, chosen, rejected, hp, out_dir, progress, ref_cache_root)[0]
