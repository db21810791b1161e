"""Judge audit: how far a judge's scores are from a reference, and which biases it shows.

Given judgments (one row per trace and repeat) and a reference per trace — exact oracle
scores, human labels, or outcome correctness — the audit reports per dimension:

- **Spearman ρ** of the judge's mean score with the reference (rank agreement; 1 is
  perfect, 0.3–0.6 is typical of LLM judges on reasoning quality).
- **quadratic-weighted κ** (Cohen 1968) of the judge's rounded score with the rounded
  reference on the 1–5 scale: chance-corrected agreement where a 1-vs-5 disagreement
  costs 16× a 1-vs-2 one. 1 is perfect, 0 chance level. Not defined for correctness.
- **repeat agreement** — share of pairs of repeats of one trace with the same score, and
  the mean within-trace standard deviation (0 at temperature 0 or for exact judges).
- **length bias** — does the judge reward length at fixed quality? ``length_slope`` is
  the least-squares coefficient of length (per 100 units) in ``score ~ reference +
  length``; ``length_partial_rho`` the Spearman correlation of length with the part of
  the judge score the reference does not explain. Both are ≈0 for an unbiased judge.
- **position bias** (pairwise mode) — ``order_swap_agreement``: share of pairs whose
  verdict survives swapping the two solutions; ``first_position_rate``: share of
  verdicts for whichever solution was shown first (0.5 for an unbiased judge).

Pure functions over DataFrames; :func:`plot_audit` writes the PNGs.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from prefdelta.errors import UserError


def quadratic_weighted_kappa(a: Sequence[float], b: Sequence[float], lo: int = 1, hi: int = 5) -> float:
    """Cohen's quadratic-weighted κ of two ratings on the integer scale ``lo..hi`` (rounded, clipped)."""
    x = np.clip(np.rint(np.asarray(a, dtype=float)), lo, hi).astype(int) - lo
    y = np.clip(np.rint(np.asarray(b, dtype=float)), lo, hi).astype(int) - lo
    if len(x) == 0:
        return math.nan
    k = hi - lo + 1
    observed = np.zeros((k, k))
    np.add.at(observed, (x, y), 1.0)
    expected = np.outer(observed.sum(1), observed.sum(0)) / observed.sum()
    idx = np.arange(k)
    weights = (idx[:, None] - idx[None, :]) ** 2 / (k - 1) ** 2
    denom = (weights * expected).sum()
    if denom == 0:  # both raters constant: agreement is perfect if they agree, else undefined
        return 1.0 if (weights * observed).sum() == 0 else math.nan
    return float(1.0 - (weights * observed).sum() / denom)


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman's ρ; NaN when either side is constant or fewer than 3 items."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(x) < 3 or np.all(x == x[0]) or np.all(y == y[0]):
        return math.nan
    return float(stats.spearmanr(x, y).statistic)


def repeat_agreement(judgments: pd.DataFrame, dim: str) -> tuple[float, float]:
    """(share of same-trace repeat pairs with equal scores, mean within-trace std)."""
    same = total = 0
    stds = []
    for _, values in judgments.groupby("trace_id", sort=False)[dim]:
        v = values.dropna().to_numpy()
        if len(v) < 2:
            continue
        stds.append(float(v.std()))
        for p, q in itertools.combinations(v, 2):
            total += 1
            same += p == q
    if not total:
        return math.nan, math.nan
    return same / total, float(np.mean(stds))


def length_bias(
    score: Sequence[float], reference: Sequence[float], length: Sequence[float]
) -> tuple[float, float]:
    """(slope of length per 100 units in ``score ~ 1 + reference + length``, partial Spearman ρ)."""
    s, r, n = (np.asarray(v, dtype=float) for v in (score, reference, length))
    if len(s) < 4 or np.all(n == n[0]):
        return math.nan, math.nan
    design = np.column_stack([np.ones_like(r), r, n / 100.0])
    coef, *_ = np.linalg.lstsq(design, s, rcond=None)
    fit_r = np.column_stack([np.ones_like(r), r])
    resid_s = s - fit_r @ np.linalg.lstsq(fit_r, s, rcond=None)[0]
    resid_n = n - fit_r @ np.linalg.lstsq(fit_r, n, rcond=None)[0]
    if np.allclose(resid_s, 0, atol=1e-9):
        return float(coef[2]) if abs(coef[2]) > 1e-9 else 0.0, 0.0
    return float(coef[2]), spearman(resid_s, resid_n)


def position_bias(pairwise: pd.DataFrame, dims: Sequence[str]) -> pd.DataFrame:
    """Per dimension: order-swap agreement and the rate of verdicts for the first-shown solution.

    ``pairwise`` has ``pair_id, order (ab|ba), repeat, prefers_a_<dim>`` (see
    :meth:`prefdelta.judge.llm.LLMJudge.compare`).
    """
    rows = []
    for d in dims:
        col = f"prefers_a_{d}"
        if col not in pairwise:
            raise UserError(f"pairwise judgments lack column '{col}'")
        wide = pairwise.pivot_table(index=["pair_id", "repeat"], columns="order", values=col, aggfunc="first")
        wide = wide.dropna()
        if wide.empty or not {"ab", "ba"} <= set(wide.columns):
            rows.append(
                {
                    "dimension": d,
                    "order_swap_agreement": math.nan,
                    "first_position_rate": math.nan,
                    "n_pairs": 0,
                }
            )
            continue
        agree = float((wide["ab"] == wide["ba"]).mean())
        first = float(pd.concat([wide["ab"], 1.0 - wide["ba"]]).mean())
        rows.append(
            {
                "dimension": d,
                "order_swap_agreement": agree,
                "first_position_rate": first,
                "n_pairs": len(wide),
            }
        )
    return pd.DataFrame(rows)


def audit(
    judgments: pd.DataFrame,
    reference: pd.DataFrame,
    dims: Sequence[str],
    lengths: pd.Series | None = None,
    reference_kind: str = "scores",
    reference_column: str | None = None,
) -> pd.DataFrame:
    """The audit table: one row per dimension.

    ``judgments``: ``trace_id, repeat, <dims>, error`` (errors left out, counted).
    ``reference``: indexed by or holding ``trace_id``; ``reference_kind`` ``scores``
    (a column per dimension, 1–5) or ``correctness`` (one boolean ``reference_column``,
    default ``outcome``, compared with every dimension; κ is then not defined).
    ``lengths``: trace length per ``trace_id`` (tokens or characters) for length bias.
    """
    missing = [c for c in ("trace_id", *dims) if c not in judgments.columns]
    if missing:
        raise UserError(f"judgments lack column '{missing[0]}' (expected trace_id and {', '.join(dims)})")
    ref = reference.set_index("trace_id") if "trace_id" in reference.columns else reference
    valid = judgments
    n_errors = 0
    if "error" in judgments.columns:
        ok = judgments["error"].isna() | (judgments["error"].astype("string") == "")
        n_errors = int((~ok).sum())
        valid = judgments[ok]
    means = valid.groupby("trace_id", sort=False)[list(dims)].mean()
    common = means.index.intersection(ref.index)
    if len(common) == 0:
        raise UserError("no trace_id is in both the judgments and the reference")
    rows = []
    for d in dims:
        if reference_kind == "correctness":
            col = reference_column or "outcome"
            if col not in ref.columns:
                raise UserError(f"reference lacks the correctness column '{col}'")
            r = ref.loc[common, col].astype(float)
            kappa = math.nan
        elif reference_kind == "scores":
            col = reference_column or d
            if col not in ref.columns:
                raise UserError(f"reference lacks column '{col}' (one per dimension, 1-5)")
            r = ref.loc[common, col].astype(float)
            kappa = quadratic_weighted_kappa(means.loc[common, d], r)
        else:
            raise UserError(f"reference kind {reference_kind!r}: expected 'scores' or 'correctness'")
        s = means.loc[common, d].astype(float)
        keep = s.notna() & r.notna()
        s, r = s[keep], r[keep]
        same, spread = repeat_agreement(valid, d)
        slope = partial = math.nan
        if lengths is not None:
            n = lengths.reindex(s.index).astype(float)
            ok_n = n.notna()
            slope, partial = length_bias(s[ok_n], r[ok_n], n[ok_n])
        rows.append(
            {
                "dimension": d,
                "n": len(s),
                "spearman": spearman(s, r),
                "qw_kappa": kappa,
                "mean_abs_error": float((s - r).abs().mean()) if reference_kind == "scores" else math.nan,
                "repeat_exact_agreement": same,
                "repeat_std": spread,
                "length_slope_per_100": slope,
                "length_partial_rho": partial,
                "n_error_rows": n_errors,
            }
        )
    return pd.DataFrame(rows)


def noisy_judge(
    scores: pd.DataFrame,
    dims: Sequence[str],
    lengths: pd.Series,
    noise_sd: float = 0.5,
    length_bias_per_100: float = 0.5,
    repeats: int = 3,
    seed: int = 0,
) -> pd.DataFrame:
    """A synthetic judge for validating the audit: exact scores + Gaussian noise + a length bias.

    ``length_bias_per_100`` is added per 100 length units, measured from the mean length
    (so the bias tilts scores without shifting their average); scores are not rounded or
    clipped, so the audit should recover the slope it was given.
    """
    rng = np.random.default_rng(seed)
    centred = (lengths - lengths.mean()) / 100.0
    rows = []
    for _, row in scores.iterrows():
        tid = row["trace_id"]
        for r in range(repeats):
            noisy = {
                d: float(row[d] + rng.normal(0.0, noise_sd) + length_bias_per_100 * centred[tid])
                for d in dims
            }
            rows.append({"trace_id": tid, "repeat": r, **noisy, "error": None})
    df = pd.DataFrame(rows)
    df["error"] = df["error"].astype("string")
    return df


def plot_audit(
    table: pd.DataFrame,
    judgments: pd.DataFrame,
    reference: pd.DataFrame,
    dims: Sequence[str],
    out_dir: Path,
    lengths: pd.Series | None = None,
    reference_column: str | None = None,
) -> list[Path]:
    """PNGs: judge vs reference per dimension, score vs length, and the summary bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    ref = reference.set_index("trace_id") if "trace_id" in reference.columns else reference
    valid = judgments[judgments["error"].isna()] if "error" in judgments else judgments
    means = valid.groupby("trace_id")[list(dims)].mean()
    common = means.index.intersection(ref.index)
    rng = np.random.default_rng(0)
    paths: list[Path] = []

    fig, axes = plt.subplots(1, len(dims), figsize=(3.2 * len(dims), 3.2), squeeze=False)
    for ax, d in zip(axes[0], dims, strict=True):
        col = reference_column or d
        r = ref.loc[common, col].astype(float).to_numpy()
        s = means.loc[common, d].to_numpy()
        ax.scatter(r + rng.uniform(-0.08, 0.08, len(r)), s, s=6, alpha=0.4)
        ax.plot([1, 5], [1, 5], color="grey", lw=0.8)
        ax.set_title(d, fontsize=9)
        ax.set_xlabel(f"reference ({col})", fontsize=8)
        ax.set_ylabel("judge (mean of repeats)", fontsize=8)
    fig.tight_layout()
    paths.append(out_dir / "judge_vs_reference.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)

    if lengths is not None:
        fig, axes = plt.subplots(1, len(dims), figsize=(3.2 * len(dims), 3.2), squeeze=False)
        for ax, d in zip(axes[0], dims, strict=True):
            col = reference_column or d
            resid = means.loc[common, d] - ref.loc[common, col].astype(float)
            ax.scatter(lengths.reindex(common), resid, s=6, alpha=0.4)
            ax.axhline(0, color="grey", lw=0.8)
            ax.set_title(d, fontsize=9)
            ax.set_xlabel("trace length", fontsize=8)
            ax.set_ylabel("judge − reference", fontsize=8)
        fig.tight_layout()
        paths.append(out_dir / "length_bias.png")
        fig.savefig(paths[-1], dpi=110)
        plt.close(fig)

    metrics = [
        m for m in ("spearman", "qw_kappa", "repeat_exact_agreement", "length_slope_per_100") if m in table
    ]
    fig, ax = plt.subplots(figsize=(1.2 + 1.6 * len(dims), 3.4))
    width = 0.8 / len(metrics)
    x = np.arange(len(table))
    for i, m in enumerate(metrics):
        ax.bar(x + i * width, table[m].fillna(0.0), width, label=m)
    ax.set_xticks(x + 0.4 - width / 2, table["dimension"], rotation=20, fontsize=8)
    ax.axhline(0, color="grey", lw=0.8)
    ax.legend(fontsize=7)
    fig.tight_layout()
    paths.append(out_dir / "audit_summary.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)
    return paths
