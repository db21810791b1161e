"""Problems of a benchmark, through the project's loaders (:mod:`prefdelta.sources`).

The rows the evaluation needs: ``problem_id``, ``prompt`` (what the model sees inside
the template), ``reference_answer`` (a number, a LaTeX answer, or a choice letter) and,
for HumanEval, ``meta`` with ``entry_point`` and ``test``.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from prefdelta.sources.registry import load_source


def load_problems(source: str, split: str = "test", data_dir: str | Path | None = None) -> pd.DataFrame:
    """``problems`` rows of ``source``/``split`` (local data directory, else the hub copy)."""
    return load_source(source, split, data_dir)
