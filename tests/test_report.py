"""The study summary's training section: seeds averaged per problem, paired intervals, verdicts."""

from __future__ import annotations

import pandas as pd

from conftest import spec_from, template_data
from prefdelta.report.markdown import _training_section


def _samples(model_id: str, correct: list[bool]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "model_id": model_id,
            "suite": "arith_in_domain",
            "problem_id": [f"p{i}" for i in range(len(correct))],
            "correct": correct,
        }
    )


def _evals(model_id: str, correct: list[bool]) -> dict[str, object]:
    return {
        "model_id": model_id,
        "suite": "arith_in_domain",
        "domain": "in",
        "value": sum(correct) / len(correct),
        "ci_low": 0.0,
        "ci_high": 1.0,
    }


def test_seeds_are_pooled_per_problem_and_the_verdict_follows_the_interval():
    data = template_data("demo")
    data["train"]["seeds"] = [0, 1]
    cfg = spec_from(data)
    student = cfg.student.model
    n = 200
    base = [i % 2 == 0 for i in range(n)]  # 50%
    better = [True] * n  # both seeds of the top run: 100%
    same_a = [i % 2 == 0 for i in range(n)]  # the random run's seeds: one as the base,
    same_b = [i % 2 == 1 for i in range(n)]  # the other its complement: 50% on average
    runs = pd.DataFrame(
        [
            {
                "run_id": f"dpo-top-s{s}",
                "variant": "dpo",
                "algorithm": "dpo",
                "selection_id": "top-x",
                "strategy": "top",
                "n_pairs": 10,
                "seed": s,
            }
            for s in (0, 1)
        ]
        + [
            {
                "run_id": f"dpo-random-s{s}",
                "variant": "dpo",
                "algorithm": "dpo",
                "selection_id": "random-x",
                "strategy": "random",
                "n_pairs": 10,
                "seed": s,
            }
            for s in (0, 1)
        ]
    )
    outcome = {
        student: base,
        "dpo-top-s0": better,
        "dpo-top-s1": better,
        "dpo-random-s0": same_a,
        "dpo-random-s1": same_b,
    }
    samples = pd.concat([_samples(m, c) for m, c in outcome.items()])
    evals = pd.DataFrame([_evals(m, c) for m, c in outcome.items()])
    text = "\n".join(
        _training_section(cfg, runs, evals, samples, ["arith_in_domain"], ["arith_in_domain acc % [95% CI]"])
    )
    assert "`dpo` on `top-x`: arith_in_domain +50.0 [" in text
    assert "`dpo` on `top-x`: arith_in_domain +50.0" in text and "a gain (interval above 0)" in text
    # the random run's seeds average to 0.5 on every problem: +/-0.5 against the base, mean 0
    line = next(x for x in text.splitlines() if x.startswith("- `dpo` on `random-x`"))
    assert "arith_in_domain +0.0 [" in line and line.endswith("not distinguishable from 0.")
    assert "top − random: arith_in_domain +50.0" in text
    assert "| after dpo on random-x | 10 | 2 | 50.0 [50.0–50.0] |" in text
