"""The calc checker and the GSM8K grader on published model solutions (``judge gsm8k-check``).

Why its rows look like judgments: each carries the ``trace_id`` and ``problem_id`` that
``prefdelta pairs import --gsm8k-solutions`` gives the same trace, and the five
dimensions on the judgments table's 1–5 scale (``1 + 4·share``, as the calc judge
writes them), so a check joins with, and reads like, the ``judgments`` of an import.
The share the checker measured (0–1) stays beside each score in ``<dimension>_share``:
the summary reports shares, which is what the checker counts.
"""

from __future__ import annotations

import pandas as pd

from prefdelta.judge.calc import check_trace
from prefdelta.judge.dimensions import DIMENSIONS, share_to_score
from prefdelta.judge.outcome import grade_gsm8k

JUDGE_ID = "calc"
COUNTS = (
    "n_annotations",
    "annotations_ok",
    "n_written",
    "written_ok",
    "n_text_equations",
    "text_equations_ok",
)


def share_column(dimension: str) -> str:
    """The column holding a dimension's 0–1 share (the score column is the bare name)."""
    return f"{dimension}_share"


def check_rows(problems: pd.DataFrame, traces: pd.DataFrame) -> pd.DataFrame:
    """One row per trace: ids, five 1–5 scores, the calc ``outcome``, five shares, the
    arithmetic counts, ``graded`` (the GSM8K grader's verdict) and ``is_correct`` (the file's)."""
    by_id = problems.set_index("problem_id")
    rows = []
    for tid, pid, gen, text, label in zip(
        traces["trace_id"],
        traces["problem_id"],
        traces["generator_id"],
        traces["text"],
        traces["is_correct"],
        strict=True,
    ):
        reference = str(by_id.at[pid, "reference_solution"])
        report = check_trace(str(by_id.at[pid, "prompt"]), reference, text)
        shares = report.shares()
        counts = report.as_dict()
        rows.append(
            {
                "trace_id": tid,
                "problem_id": pid,
                "generator_id": gen,
                "judge_id": JUDGE_ID,
                **{d: share_to_score(shares[d]) for d in DIMENSIONS},
                "outcome": report.outcome,
                **{share_column(d): shares[d] for d in DIMENSIONS},
                **{c: counts[c] for c in COUNTS},
                "graded": grade_gsm8k(text, reference).correct,
                "is_correct": bool(label),
            }
        )
    return pd.DataFrame(rows)


def summarize(rows: pd.DataFrame) -> pd.DataFrame:
    """Per generator: mean share per dimension, arithmetic checked in and out of
    annotations, accuracy by the grader and by the file, and their agreement."""
    g = rows.groupby("generator_id", sort=True)
    sums = g[list(COUNTS)].sum()
    out = g[[share_column(d) for d in DIMENSIONS]].mean()
    out["annotation_arith_ok"] = sums["annotations_ok"] / sums["n_annotations"]
    out["written_after_annotation_ok"] = sums["written_ok"] / sums["n_written"]
    out["prose_equations_ok"] = sums["text_equations_ok"] / sums["n_text_equations"]
    out["n_prose_equations"] = sums["n_text_equations"]
    out["accuracy_graded"] = g["graded"].mean()
    out["accuracy_file"] = g["is_correct"].mean()
    out["grader_agreement"] = g.apply(
        lambda x: float((x["graded"] == x["is_correct"]).mean()), include_groups=False
    )
    out["n"] = g.size()
    return out
