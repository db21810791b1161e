"""KTO on preference pairs given as text: each pair gives a desirable and an undesirable
example (Ethayarajh et al. 2024, arXiv:2402.01306); see :mod:`.trainer` for the KL point."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path

from prefdelta.train.dpo import train_on_texts
from prefdelta.train.trainer import TrainHyper


def train_kto(
    model_path: str | Path,
    prompts: Sequence[str],
    chosen: Sequence[str],
    rejected: Sequence[str],
    hp: TrainHyper,
    out_dir: Path,
    progress: Callable[[int, int], None] | None = None,
    ref_cache_root: Path | None = None,
) -> dict[str, float]:
    """Train ``model_path`` with KTO on the pairs; writes ``out_dir/final`` and ``metrics.jsonl``."""
    hp = dataclasses.replace(hp, algorithm="kto")
    return train_on_texts(model_path, prompts, chosen, rejected, hp, out_dir, progress, ref_cache_root)[0]
