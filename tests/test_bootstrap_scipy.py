"""prefdelta's percentile bootstrap intervals against ``scipy.stats.bootstrap(method="percentile")``.

The project keeps its own few lines of numpy (``prefdelta.evaluate.stats``, the report's shared
bootstrap in ``prefdelta.report.analysis``) because they are faster (``bench/bench_bootstrap.py``);
these tests hold them to the reference implementation. Both draw the resample indices as
``rng.integers(0, n, (n_resamples, n))`` — one sample after another for several samples — and take
linear-interpolated quantiles, so with the same seed the endpoints agree to rounding; with
independent seeds they agree within the Monte Carlo error of the percentile.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from prefdelta.evaluate.stats import bootstrap_ci, paired_bootstrap_ci, stratified_bootstrap_ci
from prefdelta.report import analysis

N_BOOT = 2000
SAME = 1e-12  # same seed: equal up to floating-point rounding of the means


def _scores(n: int, p: float, seed: int, k: int = 8) -> np.ndarray:
    """Per-problem avg@k scores (k samples per problem, problem difficulty varies)."""
    rng = np.random.default_rng(seed)
    difficulty = np.clip(rng.normal(p, 0.25, n), 0.02, 0.98)
    return rng.binomial(k, difficulty) / k


def _scipy(data: tuple[np.ndarray, ...], statistic, seed: int, paired: bool = False, n_boot: int = N_BOOT):
    res = stats.bootstrap(
        data,
        statistic,
        n_resamples=n_boot,
        method="percentile",
        paired=paired,
        vectorized=True,
        rng=np.random.default_rng(seed),
    )
    return res.confidence_interval.low, res.confidence_interval.high, res.standard_error


def _mean(x, axis=-1):
    return np.mean(x, axis=axis)


def _diff(a, b, axis=-1):
    return np.mean(b, axis=axis) - np.mean(a, axis=axis)


def _macro(*groups, axis=-1):
    return np.mean([np.mean(g, axis=axis) for g in groups], axis=0)


def test_mean_interval_equals_scipy_percentile():
    x = _scores(500, 0.4, seed=1)
    lo, hi, se = _scipy((x,), _mean, seed=5)
    assert bootstrap_ci(x, N_BOOT, seed=5) == pytest.approx((lo, hi), abs=SAME)
    # independent streams, more resamples: within the Monte Carlo error of a 2.5% quantile
    ours = bootstrap_ci(x, 20_000, seed=11)
    lo, hi, se = _scipy((x,), _mean, seed=12, n_boot=20_000)
    assert ours == pytest.approx((lo, hi), abs=0.1 * se)


def test_paired_interval_equals_scipy_paired():
    a, b = _scores(400, 0.4, seed=2), _scores(400, 0.45, seed=3)
    diff, lo, hi = paired_bootstrap_ci(a, b, N_BOOT, seed=7)
    assert diff == pytest.approx(b.mean() - a.mean())
    slo, shi, se = _scipy((a, b), _diff, seed=7, paired=True)
    assert (lo, hi) == pytest.approx((slo, shi), abs=SAME)
    _, lo, hi = paired_bootstrap_ci(a, b, 20_000, seed=21)
    slo, shi, se = _scipy((a, b), _diff, seed=22, paired=True, n_boot=20_000)
    assert (lo, hi) == pytest.approx((slo, shi), abs=0.1 * se)


def test_stratified_interval_equals_scipy_multi_sample():
    groups = [_scores(30, 0.2, seed=4), _scores(500, 0.6, seed=5), _scores(120, 0.4, seed=6)]
    lo, hi, _ = _scipy(tuple(groups), _macro, seed=9)
    assert stratified_bootstrap_ci(groups, N_BOOT, seed=9) == pytest.approx((lo, hi), abs=SAME)


def test_report_gains_equal_scipy_paired_and_stratified():
    """The report's shared bootstrap: a cell's gain on a suite is scipy's paired interval of
    (run, student) per-problem scores; a domain's gain averages its suites, resampled each on
    its own (scipy's multi-sample bootstrap), with the same draws."""
    n = 300
    student = {s: _scores(n, 0.4, seed=10 + i) for i, s in enumerate(("s1", "s2"))}
    trained = {s: _scores(n, 0.47, seed=20 + i) for i, s in enumerate(("s1", "s2"))}
    rows = []
    for model, scores in (("student", student), ("run-0", trained)):
        for suite, x in scores.items():
            rows += [
                {"model_id": model, "suite": suite, "problem_id": f"{suite}-{i:04d}", "correct": float(v)}
                for i, v in enumerate(x)
            ]
    runs = pd.DataFrame([{"run_id": "run-0", "variant": "dpo", "strategy": "all"}])
    gains = analysis.compute_gains(
        runs, pd.DataFrame(rows), "student", {"s1": "in", "s2": "in"}, n_boot=N_BOOT, seed=3
    )
    cell = analysis.cell_id("dpo", "all")
    point, lo, hi = gains.get(cell, "s1")
    slo, shi, _ = _scipy((student["s1"], trained["s1"]), _diff, seed=3, paired=True)
    assert point == pytest.approx(trained["s1"].mean() - student["s1"].mean())
    assert (lo, hi) == pytest.approx((slo, shi), abs=SAME)
    point, lo, hi = gains.get(cell, "in")
    d = [trained[s] - student[s] for s in ("s1", "s2")]
    slo, shi, _ = _scipy(tuple(d), _macro, seed=3)
    assert point == pytest.approx(np.mean([x.mean() for x in d]))
    assert (lo, hi) == pytest.approx((slo, shi), abs=SAME)
