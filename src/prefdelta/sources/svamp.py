"""SVAMP (Patel et al. 2021, "Are NLP Models really able to solve Simple Math Word
Problems?"): 1,000 one- or two-operation word problems with perturbed phrasing — a
robustness check for models trained on GSM8K-style data."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from prefdelta.sources.base import (
    HubCopy,
    check_split,
    format_number,
    open_records,
    problem_row,
    problems_frame,
)

SOURCE = "svamp"
HUB = HubCopy("ChilleD/SVAMP", "test")


def load(split: str = "test", data_dir: str | Path | None = None) -> pd.DataFrame:
    """``problems`` rows; ``prompt`` is ``Body`` + ``Question``, ``reference_solution`` the ``Equation``."""
    check_split(SOURCE, split)
    rows = []
    for i, r in enumerate(open_records(data_dir, "svamp/test.jsonl", HUB, SOURCE)):
        body = r.get("Body", str).strip()
        question = r.get("Question", str).strip()
        sep = " " if body.endswith((".", "?", "!")) else ". "
        rows.append(
            problem_row(
                SOURCE,
                split,
                i,
                f"{body}{sep}{question}",
                format_number(r.get("Answer", (int, float, str))),
                str(r.optional("Equation", "")).strip(),
                type=r.optional("Type"),
                native_id=r.optional("ID"),
            )
        )
    return problems_frame(rows)
