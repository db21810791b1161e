"""The study's findings as tables, computed before anything is rendered.

A *cell* is one training condition: a variant (DPO, KTO, …) on one selection, pooled over
seeds. Its *gain* on a suite is its per-problem accuracy (mean over seeds and samples)
minus the untrained student's, on the same problems. Every interval here comes from one
shared bootstrap: problems are resampled within each suite, the same draw for every cell,
so that a contrast of two cells, a domain mean over suites or a slope across rungs gets a
paired interval (Koehn 2004) rather than one built from independent errors.

Tables (pandas frames; the report renders them, tests assert on them):

- :func:`cell_table` — every cell: its design, selection attributes, pairs, seeds, mean
  deltas, on-policyness, and gains in- and out-of-domain (and per suite) with 95% intervals;
- :func:`slope_table` — per ladder design, the slope of gain against generator gap;
- :func:`grid_table` / :func:`fraction_table` — gain against fraction per key and strategy,
  and per key the smallest fraction reaching 95% of the full-data gain;
- :func:`regression_table` — which dimension's delta predicts a cell's gain;
- :func:`contrast_table` — top vs random / all, outcome vs process, quadrants, DPO vs KTO;
- :func:`budget_table` / :func:`budget_contrasts` — gain against pair-updates per strategy
  (static top / random / all and dynamic selection), and dynamic against each static one
  at the same budget;
- :func:`verdicts` — one line per reference finding: reproduced, not reproduced, inconclusive.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from prefdelta.judge.dimensions import DIMENSIONS

DELTA_KEYS = (*DIMENSIONS, "outcome")
DOMAINS = ("in", "out")


# ---- the shared bootstrap --------------------------------------------------------------------------
@dataclass
class Gains:
    """Point gains and bootstrap replicates per (cell, scope); scope is a suite or a domain."""

    cells: list[str]
    point: dict[tuple[str, str], float] = field(default_factory=dict)
    reps: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)

    def ci(self, values: np.ndarray) -> tuple[float, float]:
        finite = values[np.isfinite(values)]
        if len(finite) < 10:
            return float("nan"), float("nan")
        return float(np.quantile(finite, 0.025)), float(np.quantile(finite, 0.975))

    def get(self, cell: str, scope: str) -> tuple[float, float, float]:
        if (cell, scope) not in self.point:
            return float("nan"), float("nan"), float("nan")
        lo, hi = self.ci(self.reps[(cell, scope)])
        return self.point[(cell, scope)], lo, hi


def cell_id(variant: str, strategy: str) -> str:
    return f"{variant}|{strategy}"


def _per_problem(samples: pd.DataFrame, model_ids: list[str], suite: str) -> pd.Series:
    sub = samples[samples["model_id"].isin(model_ids) & (samples["suite"] == suite)]
    return sub.assign(correct=sub["correct"].astype(float)).groupby("problem_id")["correct"].mean()


def compute_gains(
    runs: pd.DataFrame,
    samples: pd.DataFrame,
    student: str,
    domains: dict[str, str],
    n_boot: int = 2000,
    seed: int = 0,
) -> Gains:
    """Gains of every (variant, strategy) cell against ``student`` on every suite of
    ``domains`` (suite → "in" / "out"), and per domain (the mean of its suites)."""
    cells = {
        cell_id(v, s): list(g["run_id"]) for (v, s), g in runs.groupby(["variant", "strategy"], sort=False)
    }
    out = Gains(list(cells))
    rng = np.random.default_rng(seed)
    by_domain: dict[str, list[str]] = {}
    for suite, domain in domains.items():
        base = _per_problem(samples, [student], suite)
        if base.empty:
            continue
        idx = rng.integers(0, len(base), size=(n_boot, len(base)))
        by_domain.setdefault(domain, []).append(suite)
        for c, ids in cells.items():
            mine = _per_problem(samples, ids, suite).reindex(base.index)
            if mine.isna().all():
                continue
            d = (mine - base).to_numpy(dtype=float)
            if np.isnan(d).any():  # not evaluated on every problem of the suite: no gain
                continue
            out.point[(c, suite)] = float(d.mean())
            out.reps[(c, suite)] = d[idx].mean(axis=1)
    for domain, suites in by_domain.items():
        for c in cells:
            have = [s for s in suites if (c, s) in out.point]
            if len(have) == len(suites):
                out.point[(c, domain)] = float(np.mean([out.point[(c, s)] for s in have]))
                out.reps[(c, domain)] = np.mean([out.reps[(c, s)] for s in have], axis=0)
    return out


# ---- cells ------------------------------------------------------------------------------------------
def parse_strategy(strategy: str) -> dict[str, object]:
    """Design and attributes of a selection strategy (see :mod:`prefdelta.select.strategies`):
    design, kind, key, fraction, chosen, rejected (absent ones None / NaN)."""
    base: dict[str, object] = {"key": None, "fraction": np.nan, "chosen": None, "rejected": None}
    return {**base, **_parse(strategy)}


def _parse(strategy: str) -> dict[str, object]:
    parts = strategy.split(":")
    if parts[0] == "ladder" and len(parts) == 3:
        chosen, rejected = parts[2].split(">", 1)
        return {"design": parts[1], "kind": "ladder", "chosen": chosen, "rejected": rejected}
    if parts[0] == "grid" and len(parts) >= 3:
        if parts[2] == "all":
            return {"design": parts[1], "kind": "all", "key": "all", "fraction": 1.0}
        if parts[2] == "quadrant":
            return {"design": parts[1], "kind": "quadrant", "key": parts[3], "fraction": np.nan}
        return {"design": parts[1], "kind": parts[2], "key": parts[3], "fraction": float(parts[4])}
    if parts[0] == "gen":
        chosen, rejected = parts[1].split(">", 1)
        return {"design": "gen", "kind": "ladder", "chosen": chosen, "rejected": rejected}
    return {"design": "basic", "kind": strategy, "key": None, "fraction": np.nan}


def cell_table(
    gains: Gains, runs: pd.DataFrame, selections: pd.DataFrame, pairs: pd.DataFrame, suites: list[str]
) -> pd.DataFrame:
    """One row per cell: design attributes, data, deltas, on-policyness and gains with CIs."""
    by_pair = pairs.set_index("pair_id")
    rows = []
    for (variant, strategy), g in runs.groupby(["variant", "strategy"], sort=False):
        c = cell_id(variant, strategy)
        ids = selections.loc[selections["strategy"] == strategy, "pair_id"]
        sub = by_pair.reindex(ids)
        row: dict[str, object] = {
            "cell": c,
            "variant": variant,
            "algorithm": g["algorithm"].iloc[0],
            "strategy": strategy,
            **parse_strategy(strategy),
            "n_pairs": int(g["n_pairs"].iloc[0]),
            "seeds": len(g),
            "generator_gap": float(sub["generator_gap"].mean()) if "generator_gap" in sub else np.nan,
            "onpolicy_chosen": float(g["onpolicy_chosen"].mean()) if "onpolicy_chosen" in g else np.nan,
            "onpolicy_rejected": float(g["onpolicy_rejected"].mean()) if "onpolicy_rejected" in g else np.nan,
        }
        for key in DELTA_KEYS:
            col = f"delta_{key}"
            row[col] = float(sub[col].mean()) if col in sub else np.nan
        for scope in (*DOMAINS, *suites):
            p, lo, hi = gains.get(c, scope)
            row[f"gain_{scope}"], row[f"gain_{scope}_lo"], row[f"gain_{scope}_hi"] = p, lo, hi
        rows.append(row)
    return pd.DataFrame(rows)


def _stat(gains: Gains, fn, cells: list[str], scope: str) -> tuple[float, float, float]:
    """A statistic of cells' gains with its bootstrap interval (``fn`` maps gains to a number)."""
    if not all((c, scope) in gains.point for c in cells):
        return float("nan"), float("nan"), float("nan")
    point = fn(np.array([gains.point[(c, scope)] for c in cells]))
    reps = np.array([fn(r) for r in np.stack([gains.reps[(c, scope)] for c in cells], axis=1)])
    lo, hi = gains.ci(reps)
    return float(point), lo, hi


# ---- generator level: ladders -------------------------------------------------------------------------
def slope_table(gains: Gains, cells: pd.DataFrame) -> pd.DataFrame:
    """Per ladder design and variant: the OLS slope of gain (points per point of generator
    gap) in- and out-of-domain, with its interval, and the rungs it is fitted on."""
    rows = []
    ladders = cells[cells["kind"] == "ladder"]
    for (design, variant), g in ladders.groupby(["design", "variant"], sort=False):
        g = g.sort_values("generator_gap")
        x = g["generator_gap"].to_numpy(dtype=float)
        fixed = (
            "rejected"
            if g["rejected"].nunique() == 1
            else ("chosen" if g["chosen"].nunique() == 1 else "neither")
        )
        row: dict[str, object] = {"design": design, "variant": variant, "fixed": fixed, "rungs": len(g)}
        for scope in DOMAINS:
            if len(g) >= 3 and np.ptp(x) > 0:

                def slope(y: np.ndarray, x: np.ndarray = x) -> float:
                    return float(np.polyfit(x, y, 1)[0])

                row[f"slope_{scope}"], row[f"slope_{scope}_lo"], row[f"slope_{scope}_hi"] = _stat(
                    gains, slope, list(g["cell"]), scope
                )
            else:
                row[f"slope_{scope}"] = row[f"slope_{scope}_lo"] = row[f"slope_{scope}_hi"] = np.nan
        rows.append(row)
    return pd.DataFrame(rows)


# ---- sample level: grids --------------------------------------------------------------------------------
def grid_table(cells: pd.DataFrame) -> pd.DataFrame:
    """Gain against fraction per (design, variant, key, strategy), with the full pool's gain."""
    grid = cells[cells["kind"].isin(["top", "random", "bottom"])]
    cols = ["design", "variant", "key", "kind", "fraction", "n_pairs", *[
        f"gain_{s}{e}" for s in DOMAINS for e in ("", "_lo", "_hi")]]  # fmt: skip
    return grid[cols].sort_values(["design", "variant", "key", "kind", "fraction"]).reset_index(drop=True)


def fraction_table(gains: Gains, cells: pd.DataFrame, share: float = 0.95) -> pd.DataFrame:
    """Per (design, variant, key): the smallest fraction of top pairs whose gain reaches
    ``share`` of the full pool's gain, with a bootstrap interval over that fraction."""
    rows = []
    for (design, variant), g in cells.groupby(["design", "variant"], sort=False):
        full = g[g["kind"] == "all"]
        if full.empty:
            continue
        full_cell = full["cell"].iloc[0]
        for key, k in g[g["kind"] == "top"].groupby("key"):
            k = k.sort_values("fraction")
            fracs = k["fraction"].to_numpy(dtype=float)
            for scope in DOMAINS:
                cells_ = [*k["cell"], full_cell]

                def smallest(y: np.ndarray, fracs: np.ndarray = fracs) -> float:
                    target = share * y[-1]
                    hit = [f for f, v in zip(fracs, y[:-1], strict=True) if y[-1] > 0 and v >= target]
                    return min(hit) if hit else np.inf

                p, lo, hi = _stat(gains, smallest, cells_, scope)
                rows.append({"design": design, "variant": variant, "key": key, "scope": scope,
                             "fraction_95": p, "lo": lo, "hi": hi,
                             "full_gain": gains.point.get((full_cell, scope), np.nan)})  # fmt: skip
    return pd.DataFrame(rows)


def regression_table(
    cells: pd.DataFrame, scope: str = "in", n_boot: int = 2000, seed: int = 0
) -> pd.DataFrame:
    """OLS of a grid cell's gain on its mean deltas (one coefficient per dimension and
    outcome, standardised), with bootstrap intervals over cells. Needs more cells than
    predictors + 2; with fewer, the table says so in a single row."""
    grid = cells[cells["kind"].isin(["top", "random", "bottom"])].dropna(subset=[f"gain_{scope}"])
    keys = [k for k in DELTA_KEYS if grid[f"delta_{k}"].notna().all() and grid[f"delta_{k}"].std() > 0]
    if len(grid) < len(keys) + 3 or not keys:
        return pd.DataFrame([{"predictor": "(not estimable)", "coef": np.nan, "lo": np.nan, "hi": np.nan,
                              "cells": len(grid)}])  # fmt: skip
    X = grid[[f"delta_{k}" for k in keys]].to_numpy(dtype=float)
    X = (X - X.mean(0)) / X.std(0)
    y = grid[f"gain_{scope}"].to_numpy(dtype=float)
    A = np.column_stack([np.ones(len(y)), X])
    coef = np.linalg.lstsq(A, y, rcond=None)[0][1:]
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(n_boot):
        i = rng.integers(0, len(y), len(y))
        boots.append(np.linalg.lstsq(A[i], y[i], rcond=None)[0][1:])
    b = np.array(boots)
    return pd.DataFrame({"predictor": keys, "coef": coef, "lo": np.quantile(b, 0.025, axis=0),
                         "hi": np.quantile(b, 0.975, axis=0), "cells": len(grid)})  # fmt: skip


# ---- budgets: dynamic selection against static ones at equal pair-updates ---------------------------------
def budget_table(cells: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """Gain against pair-updates per strategy: one row per cell with its budget (the runs'
    ``pair_updates``) and a curve label — ``dynamic <fraction> <key>`` for a dynamic
    variant, else the static strategy (``top 0.3 aggregate``, ``random 0.3``, ``all``).
    Empty unless the study trained a dynamic run (``train.dynamic``)."""
    if "pair_updates" not in runs or "hyper" not in runs:
        return pd.DataFrame()
    dyn = runs["hyper"].map(lambda h: json.loads(h).get("dynamic"))
    if dyn.isna().all():
        return pd.DataFrame()
    runs = runs.assign(dynamic=dyn)
    rows = []
    for (variant, strategy), g in runs.groupby(["variant", "strategy"], sort=False):
        cell = cells[cells["cell"] == cell_id(variant, strategy)]
        if cell.empty:
            continue
        c = cell.iloc[0]
        d = g["dynamic"].iloc[0]
        if d is not None:
            curve = f"dynamic {d['fraction']:g} {d['key']}"
        elif c["kind"] in ("top", "bottom", "random") and np.isfinite(c["fraction"]):
            curve = f"{c['kind']} {c['fraction']:g}" + (f" {c['key']}" if c["kind"] != "random" else "")
        else:
            curve = str(c["kind"])
        rows.append({"curve": curve, "design": c["design"], "algorithm": c["algorithm"], "variant": variant,
                     "strategy": strategy, "cell": c["cell"], "pair_updates": int(g["pair_updates"].iloc[0]),
                     "seeds": len(g), **{f"gain_{s}{e}": c[f"gain_{s}{e}"] for s in DOMAINS
                                           for e in ("", "_lo", "_hi")}})  # fmt: skip
    out = pd.DataFrame(rows)
    return out.sort_values(["algorithm", "curve", "pair_updates"]).reset_index(drop=True) if len(out) else out


def budget_contrasts(gains: Gains, budget: pd.DataFrame) -> pd.DataFrame:
    """Dynamic minus each static curve at the same pair-updates and algorithm, paired."""
    rows = []
    if budget.empty:
        return pd.DataFrame(rows)
    for (algorithm, updates), g in budget.groupby(["algorithm", "pair_updates"], sort=True):
        for d in g[g["curve"].str.startswith("dynamic")].itertuples():
            for s in g[~g["curve"].str.startswith("dynamic")].itertuples():
                row: dict[str, object] = {"contrast": f"{d.curve} − {s.curve}", "algorithm": algorithm,
                                          "pair_updates": updates}  # fmt: skip
                for scope in DOMAINS:
                    row[scope], row[f"{scope}_lo"], row[f"{scope}_hi"] = _stat(
                        gains, lambda y: y[1] - y[0], [s.cell, d.cell], scope
                    )
                rows.append(row)
    return pd.DataFrame(rows)


# ---- contrasts and verdicts ---------------------------------------------------------------------------
def contrast_table(gains: Gains, cells: pd.DataFrame) -> pd.DataFrame:
    """Paired differences of cells (b − a) in- and out-of-domain: top vs random and vs all
    per key and fraction; top by outcome vs top by step coherence; quadrant cells; KTO vs DPO."""
    rows = []

    def add(name: str, a: str, b: str, design: str, variant: str) -> None:
        row: dict[str, object] = {"contrast": name, "design": design, "variant": variant}
        for scope in DOMAINS:
            row[scope], row[f"{scope}_lo"], row[f"{scope}_hi"] = _stat(
                gains, lambda y: y[1] - y[0], [a, b], scope
            )
        rows.append(row)

    for (design, variant), g in cells.groupby(["design", "variant"], sort=False):
        find = {(r.kind, r.key, r.fraction): r.cell for r in g.itertuples()}
        full = find.get(("all", "all", 1.0))
        for (kind, key, frac), c in find.items():
            if kind != "top":
                continue
            if ("random", key, frac) in find:
                add(f"top {frac:g} {key} − random", find[("random", key, frac)], c, design, variant)
            if full:
                add(f"top {frac:g} {key} − all", full, c, design, variant)
            if key == "outcome" and ("top", "step_coherence", frac) in find:
                add(f"top {frac:g} outcome − top step_coherence", find[("top", "step_coherence", frac)], c,
                    design, variant)  # fmt: skip
        quads = {r.key: r.cell for r in g.itertuples() if r.kind == "quadrant"}
        if "CW" in quads and "CC+WW" in quads:
            add("quadrant CW − CC+WW", quads["CC+WW"], quads["CW"], design, variant)
        if full:
            for q, c in quads.items():
                add(f"quadrant {q} − all", full, c, design, variant)
    by_strategy = cells.groupby("strategy")
    for strategy, g in by_strategy:
        algos = dict(zip(g["algorithm"], g["cell"], strict=False))
        if "dpo" in algos and "kto" in algos:
            add(f"KTO − DPO on {strategy}", algos["dpo"], algos["kto"], str(g["design"].iloc[0]), "kto−dpo")
    return pd.DataFrame(rows)


def _sign(p: float, lo: float, hi: float) -> str:
    if not np.isfinite(lo):
        return "unknown"
    return "positive" if lo > 0 else ("negative" if hi < 0 else "zero")


def verdicts(slopes: pd.DataFrame, contrasts: pd.DataFrame, cells: pd.DataFrame) -> pd.DataFrame:
    """One row per reference finding and variant: verdict and the numbers behind it."""
    rows = []
    for r in slopes.itertuples():
        if r.fixed != "rejected":  # the reference design holds the rejected side fixed
            continue
        out = _sign(r.slope_out, r.slope_out_lo, r.slope_out_hi)
        verdict = {"positive": "reproduced", "negative": "not reproduced", "zero": "inconclusive"}.get(
            out, "not measured"
        )
        rows.append({
            "finding": "a wider generator gap raises out-of-domain accuracy (rejected fixed)",
            "variant": r.variant, "verdict": verdict,
            "numbers": f"OOD slope {r.slope_out:+.3f} [{r.slope_out_lo:+.3f}, {r.slope_out_hi:+.3f}] per unit of gap; "
            f"ID slope {r.slope_in:+.3f} [{r.slope_in_lo:+.3f}, {r.slope_in_hi:+.3f}] ({r.rungs} rungs)",
        })  # fmt: skip
    c = contrasts.set_index(["design", "variant", "contrast"]) if len(contrasts) else None
    for (design, variant), _ in cells.groupby(["design", "variant"], sort=False):
        if c is None:
            break
        try:
            vs_random = c.loc[(design, variant, "top 0.3 step_coherence − random")]
            vs_all = c.loc[(design, variant, "top 0.3 step_coherence − all")]
        except KeyError:
            continue
        r_sign = _sign(vs_random["in"], vs_random["in_lo"], vs_random["in_hi"])
        a_sign = _sign(vs_all["in"], vs_all["in_lo"], vs_all["in_hi"])
        if r_sign == "positive" and a_sign in ("zero", "positive"):
            verdict = "reproduced"
        elif r_sign == "negative" or a_sign == "negative":
            verdict = "not reproduced"
        else:
            verdict = "inconclusive"
        rows.append({
            "finding": "the top 30% by step-coherence delta matches all pairs and beats a random 30%",
            "variant": variant, "verdict": verdict,
            "numbers": f"ID top − random {100 * vs_random['in']:+.1f} [{100 * vs_random['in_lo']:+.1f}, "
            f"{100 * vs_random['in_hi']:+.1f}] points; top − all {100 * vs_all['in']:+.1f} "
            f"[{100 * vs_all['in_lo']:+.1f}, {100 * vs_all['in_hi']:+.1f}]",
        })  # fmt: skip
        try:
            ovp = c.loc[(design, variant, "top 0.3 outcome − top step_coherence")]
        except KeyError:
            continue
        out_cell = cells[(cells["design"] == design) & (cells["variant"] == variant) & (cells["kind"] == "top")
                         & (cells["key"] == "outcome") & (cells["fraction"] == 0.3)]  # fmt: skip
        contributes = (
            _sign(*out_cell[["gain_in", "gain_in_lo", "gain_in_hi"]].iloc[0]) if len(out_cell) else "unknown"
        )
        dominates = _sign(ovp["in"], ovp["in_lo"], ovp["in_hi"])
        if dominates == "positive" or contributes == "negative":
            verdict = "not reproduced"
        elif contributes == "positive" and dominates in ("zero", "negative"):
            verdict = "reproduced"
        else:
            verdict = "inconclusive"
        rows.append({
            "finding": "outcome correctness contributes but does not dominate",
            "variant": variant, "verdict": verdict,
            "numbers": f"ID gain of top 30% by outcome: {contributes}; outcome − step coherence "
            f"{100 * ovp['in']:+.1f} [{100 * ovp['in_lo']:+.1f}, {100 * ovp['in_hi']:+.1f}] points",
        })  # fmt: skip
    return pd.DataFrame(rows, columns=["finding", "variant", "verdict", "numbers"])
