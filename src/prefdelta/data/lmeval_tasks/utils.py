"""lm-eval ``process_results`` hooks of prefdelta's local-file tasks.

They only call prefdelta's graders, so an lm-eval run and ``prefdelta eval run`` grade
the same text the same way. lm-eval imports this file by path (``!function utils.…``).
"""

from __future__ import annotations

from prefdelta.evaluate import humaneval
from prefdelta.evaluate.passk import pass_at_k
from prefdelta.judge.outcome import grade_boxed, grade_choice, grade_gsm8k


def process_gsm8k(doc: dict, results: list[str]) -> dict[str, float]:
    return {"acc": float(grade_gsm8k(results[0], doc["answer"]).correct)}


def process_boxed(doc: dict, results: list[str]) -> dict[str, float]:
    return {"acc": float(grade_boxed(results[0], str(doc["answer"])).correct)}


def process_choice(doc: dict, results: list[str]) -> dict[str, float]:
    return {"acc": float(grade_choice(results[0], int(doc["answer"])).correct)}


def process_humaneval(doc: dict, results: list[str]) -> dict[str, float]:
    task = humaneval.Task(
        doc["task_id"], doc["prompt"], doc["entry_point"], doc["canonical_solution"], doc["test"]
    )
    runs = humaneval.grade([task] * len(results), results)
    return {"pass@1": pass_at_k(len(runs), sum(r.passed for r in runs), 1)}
