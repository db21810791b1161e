"""Minerva-math (Lewkowycz et al. 2022, "Solving Quantitative Reasoning Problems with
Language Models"): 272 university STEM problems (physics, chemistry, astronomy …) whose
solutions end in a ``\\boxed{}`` answer — the answer is taken from there."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from prefdelta.errors import UserError
from prefdelta.judge.outcome import extract_boxed
from prefdelta.sources.base import check_split, open_records, problem_row, problems_frame

SOURCE = "minerva_math"


def load(split: str = "test", data_dir: str | Path | None = None) -> pd.DataFrame:
    """``problems`` rows; local data directory only (no stable hub copy)."""
    check_split(SOURCE, split)
    rows = []
    for i, r in enumerate(open_records(data_dir, "minerva_math/test.jsonl", None, SOURCE)):
        solution = r.get("solution", str)
        answer = extract_boxed(solution)
        if answer is None:
            raise UserError(f"{r.where}: column 'solution' has no \\boxed{{}} answer")
        rows.append(
            problem_row(SOURCE, split, i, r.get("problem", str), answer, solution, type=r.optional("type"))
        )
    return problems_frame(rows)
