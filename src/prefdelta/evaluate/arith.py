"""Accuracy of a model on arith suites (greedy decoding, exact oracle grading)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pandas as pd

from prefdelta.evaluate.stats import bootstrap_ci
from prefdelta.generate.hf import generate_all
from prefdelta.judge.oracle import is_correct
from prefdelta.worlds.arith import ArithProblem, prompt_text


def evaluate_on_problems(
    model,
    tokenizer,
    problems: Sequence[ArithProblem],
    *,
    max_new_tokens: int = 128,
    batch_size: int = 128,
    on_batch: Callable[[int], None] | None = None,
) -> tuple[list[bool], list[str]]:
    """Greedy traces for ``problems`` and whether each reaches the right answer."""
    outs = generate_all(
        model,
        tokenizer,
        [prompt_text(p.text) for p in problems],
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        on_batch=on_batch,
    )
    return [is_correct(p, o.text) for p, o in zip(problems, outs, strict=True)], [o.text for o in outs]


def accuracy_row(
    model_id: str, suite: str, domain: str, correct: Sequence[bool], checkpoint_hash: str = ""
) -> dict[str, object]:
    """One ``evals`` row: accuracy with a bootstrap 95% interval."""
    lo, hi = bootstrap_ci([float(c) for c in correct])
    return {
        "model_id": model_id,
        "checkpoint_hash": checkpoint_hash,
        "suite": suite,
        "domain": domain,
        "benchmark": suite,
        "metric": "accuracy",
        "value": sum(correct) / max(len(correct), 1),
        "n": len(correct),
        "ci_low": lo,
        "ci_high": hi,
    }


def rows_frame(rows: list[dict[str, object]]) -> pd.DataFrame:
    return pd.DataFrame(rows)
