"""Name -> loader of every built-in problem source; one entry point for the CLI and stages."""

from __future__ import annotations

import importlib
from pathlib import Path

import pandas as pd

from prefdelta.errors import UserError

SPLITS: dict[str, tuple[str, ...]] = {
    "gsm8k": ("train", "test"),
    "math500": ("test",),
    "minerva_math": ("test",),
    "mmlu_stem": ("test",),
    "aime24": ("test",),
    "amc23": ("test",),
    "svamp": ("test",),
    "humaneval": ("test",),
}


def load_source(source: str, split: str = "test", data_dir: str | Path | None = None) -> pd.DataFrame:
    """``problems`` rows of a built-in source (``prefdelta.sources.<source>.load``)."""
    if source not in SPLITS:
        raise UserError(f"unknown problem source '{source}'; known: {', '.join(SPLITS)} (or use --path)")
    if split not in SPLITS[source]:
        raise UserError(f"{source} has split(s) {', '.join(SPLITS[source])}; got '{split}'")
    module = importlib.import_module(f"prefdelta.sources.{source}")
    return module.load(split=split, data_dir=data_dir)
