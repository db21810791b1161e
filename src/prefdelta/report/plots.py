"""Plots of the analysis tables (matplotlib, Agg): each function draws one figure to a PNG.

They read the tables of :mod:`prefdelta.report.analysis` only; nothing is computed here
that a test could not check on the tables themselves.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from prefdelta.report.analysis import DOMAINS

COLORS = {"in": "tab:blue", "out": "tab:orange"}
KIND_COLORS = {"top": "tab:green", "random": "tab:gray", "bottom": "tab:red"}


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    plt = _plt()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path


def _err(df: pd.DataFrame, col: str) -> np.ndarray:
    y = df[col].to_numpy(dtype=float)
    return np.abs(
        np.vstack([y - df[f"{col}_lo"].to_numpy(dtype=float), df[f"{col}_hi"].to_numpy(dtype=float) - y])
    )


def plot_ladders(cells: pd.DataFrame, path: Path) -> Path | None:
    """Gain (points) against generator gap (points), in- and out-of-domain, one panel per
    ladder design and variant, with 95% intervals."""
    ladders = cells[cells["kind"] == "ladder"]
    if ladders.empty:
        return None
    groups = list(ladders.groupby(["design", "variant"], sort=False))
    plt = _plt()
    fig, axes = plt.subplots(1, len(groups), figsize=(4.6 * len(groups), 3.6), squeeze=False)
    for ax, ((design, variant), g) in zip(axes[0], groups, strict=True):
        g = g.sort_values("generator_gap")
        fixed = "rejected" if g["rejected"].nunique() == 1 else "chosen"
        x = 100 * g["generator_gap"].to_numpy(dtype=float)
        for scope, offset in (("in", -0.6), ("out", 0.6)):
            ax.errorbar(x + offset, 100 * g[f"gain_{scope}"], yerr=100 * _err(g, f"gain_{scope}"), fmt="o-",
                        color=COLORS[scope], capsize=3, label=f"{scope}-domain")  # fmt: skip
        ax.axhline(0, color="k", lw=0.8)
        ax.set_xlabel("generator gap (capability points)")
        ax.set_ylabel("gain over the student (points)")
        fixed_gen = g[fixed].iloc[0]
        ax.set_title(f"{design} ({variant}): {fixed} fixed = {fixed_gen}", fontsize=9)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def plot_grid(cells: pd.DataFrame, path: Path) -> Path | None:
    """In-domain gain against fraction per key: top, random and bottom, and the full pool."""
    grid = cells[cells["kind"].isin(["top", "random", "bottom"])]
    if grid.empty:
        return None
    keys = list(dict.fromkeys(grid["key"]))
    plt = _plt()
    cols = min(4, len(keys))
    rows = (len(keys) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 3.0 * rows), squeeze=False)
    for ax, key in zip(axes.flat, keys, strict=False):
        for (kind, variant), g in grid[grid["key"] == key].groupby(["kind", "variant"], sort=False):
            g = g.sort_values("fraction")
            ax.errorbar(100 * g["fraction"], 100 * g["gain_in"], yerr=100 * _err(g, "gain_in"), fmt="o-",
                        color=KIND_COLORS[str(kind)], capsize=3, label=f"{kind} ({variant})")  # fmt: skip
        full = cells[(cells["kind"] == "all") & cells["design"].isin(grid.loc[grid["key"] == key, "design"])]
        for _, r in full.iterrows():
            ax.axhline(100 * r["gain_in"], color="tab:purple", ls="--", lw=1, label=f"all ({r['variant']})")
        ax.axhline(0, color="k", lw=0.8)
        ax.set_title(key, fontsize=9)
        ax.set_xlabel("fraction of pairs (%)")
        ax.set_ylabel("in-domain gain (points)")
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(keys) :]:
        ax.axis("off")
    fig.tight_layout()
    return _save(fig, path)


def plot_contrasts(contrasts: pd.DataFrame, path: Path, pattern: str, title: str) -> Path | None:
    """Paired differences matching ``pattern`` as horizontal bars with 95% intervals."""
    sub = contrasts[contrasts["contrast"].str.contains(pattern, regex=True)] if len(contrasts) else contrasts
    if sub.empty:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(sub) * 2 + 1.2))
    labels = [f"{r.contrast} ({r.variant})" for r in sub.itertuples()]
    y = np.arange(len(sub))
    for scope, dy in (("in", -0.18), ("out", 0.18)):
        ax.errorbar(100 * sub[scope], y + dy, xerr=100 * _err(sub, scope), fmt="s", color=COLORS[scope],
                    capsize=3, label=f"{scope}-domain")  # fmt: skip
    ax.axvline(0, color="k", lw=0.8)
    ax.set_yticks(y, labels, fontsize=8)
    ax.set_xlabel("difference (points), 95% paired interval")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def plot_generators(table: pd.DataFrame, path: Path) -> Path | None:
    """Every generator's (and the student's) accuracy on every suite, with 95% intervals."""
    if table.empty:
        return None
    plt = _plt()
    suites = list(dict.fromkeys(table["suite"]))
    models = list(dict.fromkeys(table["model_id"]))
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(models)), 3.6))
    width = 0.8 / len(suites)
    for i, suite in enumerate(suites):
        s = table[table["suite"] == suite].set_index("model_id").reindex(models)
        x = np.arange(len(models)) + (i - (len(suites) - 1) / 2) * width
        err = np.abs(np.vstack([s["value"] - s["ci_low"], s["ci_high"] - s["value"]]).astype(float))
        ax.bar(x, 100 * s["value"], width, yerr=100 * err, capsize=2, label=suite)
    ax.set_xticks(np.arange(len(models)), models, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=8, ncol=len(suites))
    fig.tight_layout()
    return _save(fig, path)


def plot_training_curves(runs: pd.DataFrame, metrics: dict[str, pd.DataFrame], path: Path) -> Path | None:
    """Loss, margin and the chosen / rejected log-probs per step (likelihood displacement)."""
    if not metrics:
        return None
    plt = _plt()
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.2))
    for m in list(metrics.values())[:40]:
        for ax, col in zip(axes[:2], ("loss", "margin"), strict=True):
            if col in m:
                ax.plot(m["step"], m[col], lw=0.7, alpha=0.6)
        if "logp_chosen" in m:
            axes[2].plot(m["step"], m["logp_chosen"], lw=0.7, color="tab:green", alpha=0.5)
            axes[2].plot(m["step"], m["logp_rejected"], lw=0.7, color="tab:red", alpha=0.5)
    for ax, t in zip(axes, ("loss", "reward margin", "log p chosen (green) / rejected (red)"), strict=True):
        ax.set_title(t, fontsize=9)
        ax.set_xlabel("step")
    fig.tight_layout()
    return _save(fig, path)


def plot_budget(budget: pd.DataFrame, path: Path) -> Path | None:
    """Gain against pair-updates, one curve per strategy (dynamic and static), in- and
    out-of-domain panels per algorithm, with 95% intervals."""
    if budget.empty:
        return None
    algorithms = list(dict.fromkeys(budget["algorithm"]))
    plt = _plt()
    fig, axes = plt.subplots(len(algorithms), 2, figsize=(10, 3.4 * len(algorithms)), squeeze=False)
    for row, algorithm in zip(axes, algorithms, strict=True):
        sub = budget[budget["algorithm"] == algorithm]
        for ax, scope in zip(row, DOMAINS, strict=True):
            for curve, g in sub.groupby("curve", sort=False):
                g = g.sort_values("pair_updates")
                ax.errorbar(g["pair_updates"], 100 * g[f"gain_{scope}"], yerr=100 * _err(g, f"gain_{scope}"),
                            fmt="o-" if str(curve).startswith("dynamic") else "s--", capsize=3, label=curve)  # fmt: skip
            ax.axhline(0, color="k", lw=0.8)
            ax.set_xlabel("pair-updates (pairs per epoch × epochs)")
            where = "in-domain" if scope == "in" else "out-of-domain"
            ax.set_ylabel(f"{where} gain (points)")
            ax.set_title(f"{algorithm}: {where}", fontsize=9)
            ax.legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, path)
