"""Exact grading of texts against problems, whatever the problem's grader.

One function for the three places that decide "is this answer right": a generator's
capability (generate stage), the ``outcome`` of every judgment (judge stage) and the
accuracy of a model on a suite (eval stage). The grader is the problem row's
``grader`` (from its source): ``arith``, ``gsm8k``, ``boxed``, ``choice`` (answer
extraction, :mod:`prefdelta.judge.outcome`) or ``humaneval`` (the tests run in the
sandbox, :mod:`prefdelta.evaluate.humaneval`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd


@dataclass(frozen=True)
class Grade:
    correct: bool
    predicted: str | None


def grade_texts(
    graders: Sequence[str],
    problems: Sequence[Mapping[str, Any]],
    texts: Sequence[str],
    workers: int | None = 1,
    sandbox=None,  # Limits | None
) -> list[Grade]:
    """One :class:`Grade` per text, ``problems[i]`` (a problems row, as a mapping) graded by ``graders[i]``."""
    from prefdelta.judge.outcome import grade_many

    out: list[Grade | None] = [None] * len(texts)
    code = [i for i, g in enumerate(graders) if g == "humaneval"]
    rest = [i for i, g in enumerate(graders) if g != "humaneval"]
    if code:
        from prefdelta.evaluate import humaneval

        runs = humaneval.grade(
            [humaneval.task_of(problems[i]) for i in code],
            [texts[i] for i in code],
            sandbox,
            workers=max(1, workers or 1),
        )
        for i, run in zip(code, runs, strict=True):
            out[i] = Grade(run.passed, run.status)
    if rest:
        verdicts = grade_many(
            [graders[i] for i in rest],
            [texts[i] for i in rest],
            [problems[i]["reference_answer"] for i in rest],
            workers=workers,
        )
        for i, v in zip(rest, verdicts, strict=True):
            out[i] = Grade(v.correct, None if v.predicted is None else str(v.predicted))
    return [g for g in out if g is not None]


def grade_traces(problems: pd.DataFrame, traces: pd.DataFrame, workers: int | None = 1) -> list[Grade]:
    """Grades of a traces frame (``problem_id``, ``text``) against a problems table."""
    by_id = problems.drop_duplicates("problem_id").set_index("problem_id", drop=False)
    records = by_id.to_dict("index")
    rows = [records[p] for p in traces["problem_id"]]
    graders = [str(r["grader"]) if "grader" in r and isinstance(r["grader"], str) else "gsm8k" for r in rows]
    return grade_texts(graders, rows, list(traces["text"]), workers)
