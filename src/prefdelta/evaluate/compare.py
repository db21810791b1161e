"""Compare two models benchmark by benchmark, with paired-bootstrap intervals.

Both models answered the same problems, so the difference is estimated on per-problem
score differences, resampling problems jointly (Koehn 2004): a checkpoint and its
parent agree on most problems, and the paired interval is much tighter than two
independent ones. Only problems both models were graded on are compared.
"""

from __future__ import annotations

import pandas as pd

from prefdelta.errors import UserError
from prefdelta.evaluate.runner import problem_scores
from prefdelta.evaluate.stats import paired_bootstrap_ci


def _metric_of(samples: pd.DataFrame) -> list[str]:
    """Metrics to compare for one benchmark's samples: pass@1 for code, else accuracy/avg@n."""
    if "predicted" in samples and samples["predicted"].isin(["passed", "failed", "timeout"]).all():
        return ["pass@1"]
    per_problem = samples.groupby("problem_id").size()
    n = int(per_problem.min()) if len(per_problem) else 1
    return ["accuracy"] if n == 1 else [f"avg@{n}"]


def compare_models(samples: pd.DataFrame, model_a: str, model_b: str, n_boot: int = 2000) -> pd.DataFrame:
    """Per-benchmark ``b - a`` with a paired 95% interval, from the ``eval_samples`` table.

    Rows: suite, benchmark, metric, n (shared problems), value_a, value_b, diff,
    ci_low, ci_high. A benchmark one of the models lacks is left out.
    """
    frame = samples.copy()
    if "benchmark" not in frame:
        frame["benchmark"] = frame["suite"]
    frame["benchmark"] = frame["benchmark"].fillna(frame["suite"])
    for m in (model_a, model_b):
        if not (frame["model_id"] == m).any():
            known = ", ".join(sorted(frame["model_id"].unique())[:10])
            raise UserError(f"model {m!r} has no samples in eval_samples (known: {known})")
    rows = []
    for (suite, bench), group in frame.groupby(["suite", "benchmark"], sort=True):
        a = group[group["model_id"] == model_a]
        b = group[group["model_id"] == model_b]
        if a.empty or b.empty:
            continue
        for metric in _metric_of(a):
            sa, sb = problem_scores(a, metric), problem_scores(b, metric)
            shared = sa.index.intersection(sb.index)
            if len(shared) == 0:
                continue
            diff, lo, hi = paired_bootstrap_ci(sa[shared].to_numpy(), sb[shared].to_numpy(), n_boot=n_boot)
            rows.append(
                {
                    "suite": suite,
                    "benchmark": bench,
                    "metric": metric,
                    "n": len(shared),
                    "value_a": float(sa[shared].mean()),
                    "value_b": float(sb[shared].mean()),
                    "diff": diff,
                    "ci_low": lo,
                    "ci_high": hi,
                }
            )
    if not rows:
        raise UserError(f"models {model_a!r} and {model_b!r} share no evaluated benchmark")
    return pd.DataFrame(rows)
