"""MMLU-STEM (Hendrycks et al. 2021, "Measuring Massive Multitask Language Understanding"):
3,018 four-way multiple-choice questions of the STEM subjects — out-of-domain for a
math-trained student."""

from __future__ import annotations

import string
from pathlib import Path

import pandas as pd

from prefdelta.errors import UserError
from prefdelta.sources.base import check_split, open_records, problem_row, problems_frame

SOURCE = "mmlu_stem"
LETTERS = string.ascii_uppercase


def format_choices(question: str, choices: list[str]) -> str:
    """The question, a blank line, then ``A. …`` lines (MMLU's own layout)."""
    return question.strip() + "\n\n" + "\n".join(f"{LETTERS[i]}. {c}" for i, c in enumerate(choices))


def load(split: str = "test", data_dir: str | Path | None = None) -> pd.DataFrame:
    """``problems`` rows; ``prompt`` lists the choices, ``reference_answer`` is the letter."""
    check_split(SOURCE, split)
    rows = []
    for i, r in enumerate(open_records(data_dir, "mmlu_stem/test.jsonl", None, SOURCE)):
        choices = r.get("choices", list)
        answer = r.get("answer", int)
        if not 0 <= answer < len(choices) or len(choices) > len(LETTERS):
            raise UserError(
                f"{r.where}: column 'answer' {answer} is not an index into {len(choices)} choices"
            )
        prompt = format_choices(r.get("question", str), [str(c) for c in choices])
        rows.append(
            problem_row(
                SOURCE, split, i, prompt, LETTERS[answer], "", subject=r.get("type", str), choices=choices
            )
        )
    return problems_frame(rows)
