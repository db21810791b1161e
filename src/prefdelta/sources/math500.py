"""MATH-500 (Lightman et al. 2023, "Let's Verify Step by Step"): 500 problems of the MATH
test set (Hendrycks et al. 2021) with LaTeX answers, subject and difficulty level 1–5."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from prefdelta.sources.base import HubCopy, check_split, open_records, problem_row, problems_frame

SOURCE = "math500"
HUB = HubCopy("HuggingFaceH4/MATH-500", "test")


def load(split: str = "test", data_dir: str | Path | None = None) -> pd.DataFrame:
    """``problems`` rows; ``reference_answer`` is the published LaTeX answer (grade with ``boxed``)."""
    check_split(SOURCE, split)
    rows = [
        problem_row(
            SOURCE,
            split,
            i,
            r.get("problem", str),
            r.get("answer", str),
            r.get("solution", str),
            subject=r.get("subject", str),
            level=r.optional("level"),
            unique_id=r.optional("unique_id"),
        )
        for i, r in enumerate(open_records(data_dir, "math500/test.jsonl", HUB, SOURCE))
    ]
    return problems_frame(rows)
