"""AIME 2024 (30 problems, integer answers 0–999): a hard in-domain math set."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from prefdelta.sources.base import HubCopy
from prefdelta.sources.competition import load_competition

SOURCE = "aime24"
HUB = HubCopy("HuggingFaceH4/aime_2024", "train")


def load(split: str = "test", data_dir: str | Path | None = None) -> pd.DataFrame:
    """``problems`` rows with the integer answer as text."""
    return load_competition(SOURCE, split, data_dir, HUB)
