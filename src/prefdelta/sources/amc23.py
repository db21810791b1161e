"""AMC 2023 (40 problems with numeric answers); answers published as floats (``27.0``)
are stored as ``"27"``."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from prefdelta.sources.competition import load_competition

SOURCE = "amc23"


def load(split: str = "test", data_dir: str | Path | None = None) -> pd.DataFrame:
    """``problems`` rows; local data directory only (no stable hub copy)."""
    return load_competition(SOURCE, split, data_dir)
