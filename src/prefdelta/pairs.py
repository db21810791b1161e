"""Preference pairs and their deltas: what separates the chosen trace from the rejected one.

Two deltas are measured on every pair (DESIGN.md):

- **generator-level delta** — ``generator_gap``: the capability (accuracy on the run's
  problems) of the chosen trace's generator minus the rejected one's; with
  ``param_ratio`` and ``same_family`` beside it.
- **sample-level delta** — ``delta_<dimension>``: mean judged score of the chosen trace
  minus that of the rejected one (repeats averaged), and ``delta_aggregate``, their
  weighted mean.

Everything here is a pure function of DataFrames, so it can be tested and benchmarked
without a workspace.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from prefdelta.errors import UserError
from prefdelta.hashing import stable_hash
from prefdelta.judge.dimensions import DIMENSIONS


def trace_scores(judgments: pd.DataFrame, dimensions: Sequence[str] = DIMENSIONS) -> pd.DataFrame:
    """Per-trace mean score of each dimension over repeats, and ``correct`` (bool).

    Rows with an ``error`` are left out of the means; a trace with no valid judgment at
    all keeps NaN scores, so it cannot silently look average.
    """
    missing = [d for d in (*dimensions, "trace_id", "outcome") if d not in judgments.columns]
    if missing:
        raise UserError(f"judgments table lacks column '{missing[0]}'")
    valid = judgments
    if "error" in judgments.columns:
        valid = judgments[judgments["error"].isna() | (judgments["error"] == "")]
    scores = valid.groupby("trace_id", sort=False)[list(dimensions)].mean()
    correct = judgments.groupby("trace_id", sort=False)["outcome"].max().astype(bool).rename("correct")
    return scores.join(correct, how="outer")


def cross_generator_pairs(
    traces: pd.DataFrame,
    scores: pd.DataFrame,
    generators: pd.DataFrame,
    *,
    chosen: Sequence[str] = (),
    rejected: Sequence[str] = (),
    min_gap: float = 0.0,
    per_problem: int = 1,
    seed: int = 0,
    weights: Mapping[str, float] | None = None,
    dimensions: Sequence[str] = DIMENSIONS,
) -> pd.DataFrame:
    """Pairs with the chosen trace from a more capable generator than the rejected one.

    For every problem and every ordered generator pair (A, B) with
    ``capability(A) - capability(B) > max(min_gap, 0)`` (restricted to ``chosen`` /
    ``rejected`` ids when given), up to ``per_problem`` (sample of A, sample of B)
    combinations are drawn without replacement, seeded. Identical texts are never paired.
    """
    for col in ("trace_id", "problem_id", "generator_id", "text"):
        if col not in traces.columns:
            raise UserError(f"traces table lacks column '{col}'")
    gens = generators.set_index("generator_id")
    missing_t = traces.loc[~traces["trace_id"].isin(scores.index), "trace_id"]
    if len(missing_t):
        raise UserError(
            f"trace {missing_t.iloc[0]!r} has no judgment; run the judge stage on these traces first"
        )
    unknown = sorted(set(traces["generator_id"]) - set(gens.index))
    if unknown:
        raise UserError(f"trace generator {unknown[0]!r} is not in the generators table")
    cap = gens["capability"].astype(float)
    ids = list(gens.index)
    combos = [
        (a, b)
        for a in ids
        for b in ids
        if a != b
        and (not chosen or a in chosen)
        and (not rejected or b in rejected)
        and cap[a] - cap[b] > max(min_gap, 0.0) - 1e-12
        and cap[a] > cap[b]
    ]
    if not combos:
        raise UserError(
            "no generator pair has a positive capability gap above pairs.min_gap "
            f"(capabilities: {', '.join(f'{k}={v:.2f}' for k, v in cap.items())})"
        )
    rng = np.random.default_rng(seed)
    by_key = {k: g for k, g in traces.groupby(["problem_id", "generator_id"], sort=True)}
    rows: list[dict[str, object]] = []
    problems = sorted(traces["problem_id"].unique())
    for a, b in combos:
        for pid in problems:
            ta, tb = by_key.get((pid, a)), by_key.get((pid, b))
            if ta is None or tb is None:
                continue
            cand = [
                (i, j)
                for i in range(len(ta))
                for j in range(len(tb))
                if ta["text"].iat[i] != tb["text"].iat[j]
            ]
            if not cand:
                continue
            take = rng.permutation(len(cand))[:per_problem]
            for k in take:
                i, j = cand[k]
                rows.append(
                    {
                        "problem_id": pid,
                        "chosen_trace_id": ta["trace_id"].iat[i],
                        "rejected_trace_id": tb["trace_id"].iat[j],
                        "chosen_generator": a,
                        "rejected_generator": b,
                    }
                )
    if not rows:
        raise UserError("no pairs could be built: the generators share no problem with distinct traces")
    pairs = pd.DataFrame(rows)
    return add_deltas(pairs, scores, gens, weights=weights, dimensions=dimensions)


def add_deltas(
    pairs: pd.DataFrame,
    scores: pd.DataFrame,
    generators: pd.DataFrame,
    *,
    weights: Mapping[str, float] | None = None,
    dimensions: Sequence[str] = DIMENSIONS,
) -> pd.DataFrame:
    """Add pair ids, generator-level and sample-level deltas and correctness columns."""
    weights = dict(weights or dict.fromkeys(dimensions, 1.0))
    out = pairs.copy()
    out.insert(
        0,
        "pair_id",
        [stable_hash(c, r) for c, r in zip(out["chosen_trace_id"], out["rejected_trace_id"], strict=True)],
    )
    ch = scores.reindex(out["chosen_trace_id"])
    rj = scores.reindex(out["rejected_trace_id"])
    cap = generators["capability"].astype(float)
    out["chosen_capability"] = cap.reindex(out["chosen_generator"]).to_numpy()
    out["rejected_capability"] = cap.reindex(out["rejected_generator"]).to_numpy()
    out["generator_gap"] = out["chosen_capability"] - out["rejected_capability"]
    params = generators["params"].astype(float)
    out["param_ratio"] = (
        params.reindex(out["chosen_generator"]).to_numpy()
        / params.reindex(out["rejected_generator"]).to_numpy()
    )
    fam = generators["family"]
    out["same_family"] = (
        fam.reindex(out["chosen_generator"]).to_numpy() == fam.reindex(out["rejected_generator"]).to_numpy()
    )
    total_w = sum(weights.get(d, 0.0) for d in dimensions) or 1.0
    agg = np.zeros(len(out))
    for d in dimensions:
        delta = ch[d].to_numpy(dtype=float) - rj[d].to_numpy(dtype=float)
        out[f"delta_{d}"] = delta
        agg += weights.get(d, 0.0) * delta
    out["delta_aggregate"] = agg / total_w
    out["chosen_correct"] = ch["correct"].to_numpy(dtype=bool)
    out["rejected_correct"] = rj["correct"].to_numpy(dtype=bool)
    out["flagged"] = out["delta_aggregate"] < 0
    return out
