"""Confidence intervals for accuracies and differences of accuracies."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def bootstrap_ci(
    values: Sequence[float], n_boot: int = 2000, alpha: float = 0.05, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values``."""
    x = np.asarray(values, dtype=float)
    if len(x) == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, len(x), size=(n_boot, len(x)))].mean(axis=1)
    return float(np.quantile(means, alpha / 2)), float(np.quantile(means, 1 - alpha / 2))


def mean_ci_t(values: Sequence[float], alpha: float = 0.05) -> tuple[float, float, float]:
    """Mean and Student-t interval (for a handful of seeds)."""
    from scipy import stats

    x = np.asarray(values, dtype=float)
    m = float(x.mean())
    if len(x) < 2:
        return m, float("nan"), float("nan")
    half = float(stats.t.ppf(1 - alpha / 2, len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x)))
    return m, m - half, m + half


def stratified_bootstrap_ci(
    groups: Sequence[Sequence[float]], n_boot: int = 2000, alpha: float = 0.05, seed: int = 0
) -> tuple[float, float]:
    """Percentile interval of the *macro* mean of ``groups`` (e.g. a suite's benchmarks).

    Each group is resampled on its own (its problems with replacement), so a suite score
    that averages benchmarks of very different sizes gets an honest interval.
    """
    groups = [np.asarray(g, dtype=float) for g in groups if len(g)]
    if not groups:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = np.zeros(n_boot)
    for g in groups:
        means += g[rng.integers(0, len(g), size=(n_boot, len(g)))].mean(axis=1)
    means /= len(groups)
    return float(np.quantile(means, alpha / 2)), float(np.quantile(means, 1 - alpha / 2))


def paired_bootstrap_ci(
    a: Sequence[float], b: Sequence[float], n_boot: int = 2000, alpha: float = 0.05, seed: int = 0
) -> tuple[float, float, float]:
    """Difference of means ``mean(b) - mean(a)`` on the same items, with a paired interval.

    Items (problems) are resampled *together* for both models (Koehn 2004, "Statistical
    significance tests for machine translation evaluation"): the per-item correlation
    between two checkpoints makes this interval much tighter than two independent ones.
    Returns ``(difference, ci_low, ci_high)``.
    """
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.shape != y.shape:
        raise ValueError(f"paired bootstrap needs the same items: {x.shape} vs {y.shape}")
    if len(x) == 0:
        return float("nan"), float("nan"), float("nan")
    d = y - x
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, len(d), size=(n_boot, len(d)))].mean(axis=1)
    return float(d.mean()), float(np.quantile(means, alpha / 2)), float(np.quantile(means, 1 - alpha / 2))
