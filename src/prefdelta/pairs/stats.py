"""Statistics of a pair set: counts, quadrants, delta distributions, correlations, gaps.

What ``prefdelta pairs stats`` prints and plots, as pure functions of the pairs table
(plots write PNGs with matplotlib's Agg backend; nothing is shown on screen):

- **counts**: pairs, problems, generator pairs, flagged pairs;
- **quadrants**: pairs per correctness quadrant (``CC``, ``CW``, ``WC``, ``WW``);
- **deltas**: per dimension (and outcome, aggregate) the number of pairs with a value,
  mean, standard deviation, quartiles and the shares of negative / zero / positive deltas;
- **correlation** of the dimension deltas (Pearson, pairwise complete): dimensions that
  move together carry the same signal, so selecting on one selects on the other;
- **by generator pair**: generator-level delta (capability gap, parameter ratio, same
  family) beside the mean sample-level deltas — does a larger gap give larger deltas?
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from prefdelta.errors import UserError
from prefdelta.judge.dimensions import DIMENSIONS
from prefdelta.pairs.config import QUADRANTS

DELTA_KEYS: tuple[str, ...] = (*DIMENSIONS, "outcome", "aggregate")


@dataclass(frozen=True)
class PairStats:
    """The statistics of one pair set (see the module docstring)."""

    counts: dict[str, int]
    quadrants: pd.DataFrame
    deltas: pd.DataFrame
    correlation: pd.DataFrame
    by_generator_pair: pd.DataFrame

    def as_dict(self) -> dict[str, object]:
        """JSON-ready: tables as lists of records (NaN as null)."""

        def recs(df: pd.DataFrame) -> list[dict[str, object]]:
            return json.loads(df.reset_index().to_json(orient="records"))

        return {
            "counts": self.counts,
            "quadrants": recs(self.quadrants),
            "deltas": recs(self.deltas),
            "correlation": recs(self.correlation),
            "by_generator_pair": recs(self.by_generator_pair),
        }


def delta_keys(pairs: pd.DataFrame, keys: Sequence[str] = DELTA_KEYS) -> list[str]:
    """The keys whose ``delta_<key>`` column the pairs table has; unknown names are an error."""
    unknown = [k for k in keys if k not in DELTA_KEYS]
    if unknown:
        raise UserError(f"unknown dimension {unknown[0]!r}; expected one of {', '.join(DELTA_KEYS)}")
    return [k for k in keys if f"delta_{k}" in pairs.columns]


def pair_stats(pairs: pd.DataFrame, keys: Sequence[str] = DELTA_KEYS) -> PairStats:
    """All statistics of ``pairs``; an empty pair set is an error (there is nothing to describe)."""
    if pairs.empty:
        raise UserError("the pair set is empty: no statistics to report")
    keys = delta_keys(pairs, keys)
    counts = {
        "pairs": len(pairs),
        "problems": int(pairs["problem_id"].nunique()),
        "generator_pairs": int(pairs.groupby(["chosen_generator", "rejected_generator"]).ngroups),
        "flagged": int(pairs["flagged"].sum()) if "flagged" in pairs.columns else 0,
        "max_pairs_per_problem": int(pairs.groupby("problem_id").size().max()),
    }
    missing = [
        c for c in ("pair_id", "problem_id", "chosen_generator", "rejected_generator") if c not in pairs
    ]
    if missing:
        raise UserError(f"the pairs table lacks column '{missing[0]}'; rebuild it with `prefdelta pairs`")
    if "quadrant" in pairs.columns:
        quadrant = pairs["quadrant"]
    else:
        quadrant = pd.Series(
            np.where(pairs["chosen_correct"], "C", "W").astype(object)
            + np.where(pairs["rejected_correct"], "C", "W").astype(object)
        )
    quad = quadrant.value_counts().reindex(list(QUADRANTS), fill_value=0)
    quadrants = pd.DataFrame({"pairs": quad, "share": quad / len(pairs)})
    quadrants.index.name = "quadrant"
    rows = {}
    for k in keys:
        v = pairs[f"delta_{k}"].astype(float)
        valid = v.dropna()
        n = len(valid)
        rows[k] = {
            "n": n,
            "mean": valid.mean() if n else np.nan,
            "std": valid.std() if n > 1 else np.nan,
            "min": valid.min() if n else np.nan,
            "q25": valid.quantile(0.25) if n else np.nan,
            "median": valid.median() if n else np.nan,
            "q75": valid.quantile(0.75) if n else np.nan,
            "max": valid.max() if n else np.nan,
            "share_neg": (valid < 0).mean() if n else np.nan,
            "share_zero": (valid == 0).mean() if n else np.nan,
            "share_pos": (valid > 0).mean() if n else np.nan,
        }
    deltas = pd.DataFrame.from_dict(rows, orient="index")
    deltas.index.name = "dimension"
    dims = [k for k in keys if k != "aggregate" and pairs[f"delta_{k}"].notna().sum() > 1]
    corr = pairs[[f"delta_{k}" for k in dims]].astype(float).corr()
    corr.index = corr.columns = dims
    corr.index.name = "dimension"
    agg: dict[str, tuple[str, str]] = {
        "pairs": ("pair_id", "size"),
        "generator_gap": ("generator_gap", "mean"),
        "param_ratio": ("param_ratio", "mean"),
        "same_family": ("same_family", "first"),
    }
    agg.update({f"mean_delta_{k}": (f"delta_{k}", "mean") for k in keys})
    by_gen = (
        pairs.groupby(["chosen_generator", "rejected_generator"])
        .agg(**agg)
        .sort_values("generator_gap", ascending=False)
    )
    return PairStats(counts, quadrants, deltas, corr, by_gen)


_SIGNED = ("mean", "min", "q25", "median", "q75", "max", "generator_gap")


def _md_table(df: pd.DataFrame, floatfmt: str = "{:.3f}", signed: bool = False) -> str:
    """Markdown table; deltas (and every cell when ``signed``) carry their sign."""
    df = df.reset_index()
    header = "| " + " | ".join(map(str, df.columns)) + " |"
    sep = "|" + "|".join(" --- " for _ in df.columns) + "|"

    def cell(v: object, col: str) -> str:
        if isinstance(v, bool | np.bool_):
            return "yes" if v else "no"
        if isinstance(v, float | np.floating):
            if np.isnan(v):
                return "–"
            sign = signed or col in _SIGNED or col.startswith("mean_delta")
            return ("{:+.3f}" if sign else floatfmt).format(v)
        return str(v)

    cols = [str(c) for c in df.columns]
    lines = [header, sep] + [
        "| " + " | ".join(cell(v, c) for v, c in zip(row, cols, strict=True)) + " |"
        for row in df.itertuples(False)
    ]
    return "\n".join(lines)


def render_markdown(stats: PairStats, title: str = "Pair set") -> str:
    """The statistics as Markdown tables (what the CLI prints)."""
    c = stats.counts
    out = [
        f"# {title}",
        "",
        f"{c['pairs']} pairs on {c['problems']} problems from {c['generator_pairs']} generator pair(s); "
        f"{c['flagged']} flagged (chosen below rejected); at most {c['max_pairs_per_problem']} pairs "
        "on one problem.",
        "",
        "## Correctness quadrants (chosen, rejected: C correct, W wrong)",
        "",
        _md_table(
            stats.quadrants.rename(columns={"share": "share %"}).assign(
                **{"share %": stats.quadrants["share"] * 100}
            ),
            "{:.1f}",
        ),
        "",
        "## Delta distributions (chosen − rejected; dimensions on the 1–5 scale)",
        "",
        _md_table(stats.deltas),
        "",
        "## Correlation of dimension deltas (Pearson)",
        "",
        _md_table(stats.correlation, signed=True)
        if len(stats.correlation)
        else "(fewer than two scored dimensions)",
        "",
        "## Delta by generator pair",
        "",
        _md_table(stats.by_generator_pair),
        "",
    ]
    return "\n".join(out)


def plot_histograms(pairs: pd.DataFrame, path: Path, keys: Sequence[str] = DELTA_KEYS) -> Path:
    """One histogram per delta (shared bins on the −4…4 scale); dimensions without scores say so."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = delta_keys(pairs, keys)
    cols = 4
    rows = (len(keys) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows), squeeze=False)
    for ax, k in zip(axes.flat, keys, strict=False):
        v = pairs[f"delta_{k}"].astype(float).dropna()
        if v.empty:
            ax.text(0.5, 0.5, "no scores", ha="center", va="center", transform=ax.transAxes)
        else:
            lo, hi = min(-1.0, float(v.min())), max(1.0, float(v.max()))
            ax.hist(v, bins=np.linspace(lo, hi, 33), color="tab:blue")
            ax.axvline(0, color="k", lw=0.8)
            ax.set_title(f"{k} (mean {v.mean():+.2f})", fontsize=9)
        ax.set_xlabel("delta", fontsize=8)
    for ax in list(axes.flat)[len(keys) :]:
        ax.axis("off")
    fig.tight_layout()
    return _save(fig, path)


def plot_correlation(stats: PairStats, path: Path) -> Path:
    """Heatmap of the correlation matrix of dimension deltas."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    corr = stats.correlation
    fig, ax = plt.subplots(figsize=(1.2 * len(corr) + 2, 1.0 * len(corr) + 1.5))
    if len(corr) < 2:
        ax.text(0.5, 0.5, "fewer than two scored dimensions", ha="center", va="center")
        ax.axis("off")
        return _save(fig, path)
    im = ax.imshow(corr.to_numpy(dtype=float), vmin=-1, vmax=1, cmap="RdBu_r")
    ax.set_xticks(range(len(corr)), corr.columns, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(corr)), corr.index, fontsize=8)
    for i in range(len(corr)):
        for j in range(len(corr)):
            val = corr.iat[i, j]
            ax.text(j, i, "–" if np.isnan(val) else f"{val:.2f}", ha="center", va="center", fontsize=7)
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    return _save(fig, path)


def plot_delta_by_gap(stats: PairStats, path: Path, keys: Sequence[str] = DELTA_KEYS) -> Path:
    """Mean delta of each dimension against the generator gap, one point per generator pair."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bg = stats.by_generator_pair
    fig, ax = plt.subplots(figsize=(6, 4))
    for k in keys:
        col = f"mean_delta_{k}"
        if col in bg.columns and bg[col].notna().any():
            ax.plot(bg["generator_gap"] * 100, bg[col], "o", label=k)
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xlabel("generator gap (accuracy points)")
    ax.set_ylabel("mean delta (chosen − rejected)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, path)


def _save(fig: object, path: Path) -> Path:
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)  # type: ignore[attr-defined]
    plt.close(fig)  # type: ignore[arg-type]
    return path


def write_report(pairs: pd.DataFrame, out_dir: Path, title: str = "Pair set") -> tuple[PairStats, list[Path]]:
    """Statistics, their Markdown and JSON, and the three PNG plots, written into ``out_dir``."""
    from prefdelta.workspace import atomic_write_text

    stats = pair_stats(pairs)
    out_dir = Path(out_dir)
    md = out_dir / "pairs_stats.md"
    js = out_dir / "pairs_stats.json"
    atomic_write_text(md, render_markdown(stats, title))
    atomic_write_text(js, json.dumps(stats.as_dict(), indent=2))
    pngs = [
        plot_histograms(pairs, out_dir / "delta_histograms.png"),
        plot_correlation(stats, out_dir / "delta_correlation.png"),
        plot_delta_by_gap(stats, out_dir / "delta_by_gap.png"),
    ]
    return stats, [md, js, *pngs]
