"""prefdelta's percentile bootstrap intervals against ``scipy.stats.bootstrap``: speed and agreement.

The cases are the shapes prefdelta computes: the interval of one benchmark's accuracy
(``bootstrap_ci``, 500 problems), a paired difference of two models on the same problems
(``paired_bootstrap_ci``, ``prefdelta eval compare``), and a suite's macro mean over
benchmarks of very different sizes (``stratified_bootstrap_ci``: 30, 40, 500 and 1,319
problems, like AIME24, AMC23, MATH-500 and GSM8K), each with 2,000 resamples. scipy runs
with ``method="percentile"``, ``vectorized=True`` and the same seed, so both draw the same
indices and the endpoints must agree to rounding (printed as ``max |diff|``).

Each call is timed ``--repeats`` times, ours and scipy's alternating (a busy machine slows
both alike), and the median is kept. The headline is the geometric mean over the cases of
scipy's time / ours:

    .venv/bin/python bench/bench_bootstrap.py [--repeats 60]
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections.abc import Callable

import numpy as np
from scipy import stats

from prefdelta.evaluate.stats import bootstrap_ci, paired_bootstrap_ci, stratified_bootstrap_ci

N_BOOT = 2000
SEED = 0


def scores(n: int, p: float, seed: int, k: int = 1) -> np.ndarray:
    """Per-problem scores: 0/1 accuracy (k = 1) or avg@k."""
    rng = np.random.default_rng(seed)
    return rng.binomial(k, np.clip(rng.normal(p, 0.25, n), 0.02, 0.98)) / k


def scipy_ci(data: tuple[np.ndarray, ...], statistic: Callable, paired: bool = False) -> tuple[float, float]:
    res = stats.bootstrap(
        data,
        statistic,
        n_resamples=N_BOOT,
        method="percentile",
        paired=paired,
        vectorized=True,
        rng=np.random.default_rng(SEED),
    )
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def cases() -> list[tuple[str, Callable[[], tuple[float, float]], Callable[[], tuple[float, float]]]]:
    acc = scores(500, 0.4, 1)
    a, b = scores(500, 0.4, 2), scores(500, 0.45, 3)
    groups = [scores(30, 0.2, 4, k=8), scores(40, 0.3, 5, k=8), scores(500, 0.5, 6), scores(1319, 0.6, 7)]

    def mean(x, axis=-1):
        return np.mean(x, axis=axis)

    def diff(x, y, axis=-1):
        return np.mean(y, axis=axis) - np.mean(x, axis=axis)

    def macro(*gs, axis=-1):
        return np.mean([np.mean(g, axis=axis) for g in gs], axis=0)

    return [
        ("mean of 500", lambda: bootstrap_ci(acc, N_BOOT, seed=SEED), lambda: scipy_ci((acc,), mean)),
        (
            "paired diff of 500",
            lambda: paired_bootstrap_ci(a, b, N_BOOT, seed=SEED)[1:],
            lambda: scipy_ci((a, b), diff, paired=True),
        ),
        (
            "macro of 30/40/500/1319",
            lambda: stratified_bootstrap_ci(groups, N_BOOT, seed=SEED),
            lambda: scipy_ci(tuple(groups), macro),
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=60)
    args = parser.parse_args()
    ratios = []
    print(f"{'case':<26} {'ours ms':>9} {'scipy ms':>9} {'scipy/ours':>10} {'max |diff|':>11}")
    for name, ours, theirs in cases():
        ours(), theirs()  # warm-up: imports, caches
        t_ours, t_scipy = [], []
        for _ in range(args.repeats):
            start = time.perf_counter()
            mine = ours()
            t_ours.append(time.perf_counter() - start)
            start = time.perf_counter()
            ref = theirs()
            t_scipy.append(time.perf_counter() - start)
        diff = max(abs(mine[0] - ref[0]), abs(mine[1] - ref[1]))
        m_ours, m_scipy = statistics.median(t_ours), statistics.median(t_scipy)
        ratios.append(m_scipy / m_ours)
        print(f"{name:<26} {1e3 * m_ours:9.2f} {1e3 * m_scipy:9.2f} {m_scipy / m_ours:10.2f} {diff:11.1e}")
    speedup = math.exp(sum(math.log(r) for r in ratios) / len(ratios))
    print(f"figure bootstrap_speedup_vs_scipy {speedup:.2f} ratio")


if __name__ == "__main__":
    main()
