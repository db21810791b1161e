"""Preference pairs and their deltas: what separates the chosen trace from the rejected one.

Two deltas are measured on every pair (DESIGN.md):

- **generator-level delta** — ``generator_gap``: accuracy of the chosen trace's generator
  minus the rejected one's, both measured on the problems the two generators answered
  (``chosen_capability`` / ``rejected_capability``); with ``param_ratio`` (chosen params /
  rejected params) and ``same_family`` beside it.
- **sample-level delta** — ``delta_<dimension>``: mean judged score of the chosen trace
  minus that of the rejected one (repeats averaged), ``delta_outcome`` (1, 0 or -1) and
  ``delta_aggregate``, their weighted mean.

Every pair also carries its correctness ``quadrant`` (``CC``, ``CW``, ``WC``, ``WW``: chosen
then rejected, correct or wrong) and ``flagged`` (the chosen trace scores below the
rejected one on the flag key).

Three strategies build pairs (:func:`build_pairs`): cross-generator (the study's pairs),
within-generator best-vs-worst and correctness (correct vs incorrect). Matching is
vectorised: candidates are a merge on ``problem_id``; a seeded 64-bit hash of
(chosen trace id, rejected trace id) orders them, and the first ``per_problem`` per group
are kept — so a pair's membership does not depend on row order or on other generators.

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
from prefdelta.pairs.config import QUADRANTS, PairsConfig

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def trace_scores(judgments: pd.DataFrame, dimensions: Sequence[str] = DIMENSIONS) -> pd.DataFrame:
    """Per-trace mean score of each dimension over repeats, and ``correct`` (bool).

    Rows with an ``error`` are left out of the means; a trace with no valid judgment at
    all keeps NaN scores, so it cannot silently look average. ``correct`` is true when
    any judgment of the trace says so (outcome is checked, not opined).
    """
    missing = [d for d in (*dimensions, "trace_id", "outcome") if d not in judgments.columns]
    if missing:
        raise UserError(
            f"judgments table lacks column '{missing[0]}' (expected trace_id, outcome and "
            f"{', '.join(dimensions)})"
        )
    valid = judgments
    if "error" in judgments.columns:
        valid = judgments[judgments["error"].isna() | (judgments["error"] == "")]
    scores = valid.groupby("trace_id", sort=False)[list(dimensions)].mean()
    outcome = pd.to_numeric(judgments["outcome"], errors="coerce").astype(float)
    correct = (outcome.groupby(judgments["trace_id"], sort=False).max() > 0.5).rename("correct")
    return scores.join(correct, how="outer")


# ---- inputs ------------------------------------------------------------------------


def _check_columns(df: pd.DataFrame, table: str, cols: Sequence[str]) -> None:
    for col in cols:
        if col not in df.columns:
            raise UserError(f"{table} table lacks column '{col}' (expected {', '.join(cols)})")


def _prepared(
    traces: pd.DataFrame,
    scores: pd.DataFrame,
    generators: pd.DataFrame,
    weights: Mapping[str, float],
    seed: int = 0,
) -> pd.DataFrame:
    """Traces sorted by (problem, generator, trace id) with row numbers, hashes, correctness
    and judge aggregate; ``id_hash`` is the seeded hash of the trace id (matching order)."""
    _check_columns(traces, "traces", ("trace_id", "problem_id", "generator_id", "text"))
    _check_columns(generators, "generators", ("generator_id",))
    if traces.empty:
        raise UserError("the traces table is empty: nothing to pair")
    dup = traces["trace_id"].duplicated()
    if dup.any():
        raise UserError(f"traces table: trace_id {traces['trace_id'][dup].iloc[0]!r} appears twice")
    unjudged = pd.Index(scores.index).get_indexer(traces["trace_id"]) < 0
    if unjudged.any():
        raise UserError(
            f"trace {traces['trace_id'].to_numpy()[unjudged][0]!r} has no judgment "
            f"({int(unjudged.sum())} of {len(traces)} traces); run the judge stage on these traces first"
        )
    unknown = sorted(set(traces["generator_id"]) - set(generators["generator_id"]))
    if unknown:
        raise UserError(f"trace generator {unknown[0]!r} is not in the generators table")
    t = traces[["trace_id", "problem_id", "generator_id", "text"]].sort_values(
        ["problem_id", "generator_id", "trace_id"], kind="stable", ignore_index=True
    )
    s = scores.reindex(t["trace_id"])
    t["correct"] = s["correct"].fillna(False).to_numpy(dtype=bool)
    t["judge_aggregate"] = trace_aggregate(s, weights)
    t["text_hash"] = pd.util.hash_array(t["text"].astype(str).to_numpy(dtype=object))
    t["id_hash"] = pd.util.hash_array(
        t["trace_id"].to_numpy(dtype=object), hash_key=stable_hash("pairs-seed", seed)[:16]
    )
    t["pcode"] = pd.factorize(t["problem_id"], sort=True)[0]
    t["row"] = np.arange(len(t))
    return t


def trace_aggregate(scores: pd.DataFrame, weights: Mapping[str, float]) -> np.ndarray:
    """Weighted mean of a trace's dimension scores (``outcome`` counts 1 when correct).

    NaN when a weighted dimension has no score, so unjudged traces never win a ranking.
    """
    total = np.zeros(len(scores))
    wsum = 0.0
    for d, w in weights.items():
        if w == 0:
            continue
        col = scores["correct"].astype(float) if d == "outcome" else scores[d].astype(float)
        total = total + w * col.to_numpy(dtype=float)
        wsum += w
    return total / (wsum or 1.0)


def shared_accuracy(traces: pd.DataFrame, correct: pd.Series | np.ndarray) -> pd.DataFrame:
    """``acc.loc[A, B]``: accuracy of generator A on the problems both A and B answered.

    Accuracy is the mean over those problems of A's per-problem share of correct samples,
    so the gap ``acc[A, B] - acc[B, A]`` compares the two on the same problems.
    """
    per = (
        pd.Series(np.asarray(correct, dtype=float), index=traces.index)
        .groupby([traces["problem_id"], traces["generator_id"]])
        .mean()
        .unstack("generator_id")
    )
    present = per.notna().to_numpy(dtype=float)
    values = per.fillna(0.0).to_numpy(dtype=float)
    num = values.T @ present
    den = present.T @ present
    with np.errstate(invalid="ignore", divide="ignore"):
        acc = np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)
    return pd.DataFrame(acc, index=per.columns, columns=per.columns)


def _candidates(left: pd.DataFrame, right: pd.DataFrame, quadrants: Sequence[str]) -> pd.DataFrame:
    """Every (left row, right row) on the same problem with distinct texts, in the quadrants.

    Only numeric columns travel through the merge; strings are looked up at the end.
    """
    cols = ["pcode", "row", "text_hash", "correct"]
    cand = left[cols].merge(right[cols], on="pcode", suffixes=("_c", "_r"))
    keep = cand["text_hash_c"].to_numpy() != cand["text_hash_r"].to_numpy()
    if set(quadrants) != set(QUADRANTS):
        keep &= in_quadrants(cand["correct_c"], cand["correct_r"], quadrants)
    return cand[keep]


def _take(cand: pd.DataFrame, t: pd.DataFrame, group: list[str], per_problem: int) -> pd.DataFrame:
    """The first ``per_problem`` candidates of each group, ordered by the seeded hash of
    (chosen trace id, rejected trace id)."""
    if cand.empty:
        return cand
    h = t["id_hash"].to_numpy()
    key = (h[cand["row_c"].to_numpy()] * _GOLDEN) ^ h[cand["row_r"].to_numpy()]
    cand = cand.assign(_key=key).sort_values([*group, "_key"], kind="stable")
    return cand[cand.groupby(group, sort=False).cumcount() < per_problem]


def _as_pairs(picked: pd.DataFrame, t: pd.DataFrame, strategy: str) -> pd.DataFrame:
    rc, rr = picked["row_c"].to_numpy(), picked["row_r"].to_numpy()
    tid = t["trace_id"].to_numpy(dtype=object)
    gid = t["generator_id"].to_numpy(dtype=object)
    return pd.DataFrame(
        {
            "problem_id": t["problem_id"].to_numpy(dtype=object)[rc],
            "strategy": strategy,
            "chosen_trace_id": tid[rc],
            "rejected_trace_id": tid[rr],
            "chosen_generator": gid[rc],
            "rejected_generator": gid[rr],
        }
    )


def _check_ids(names: Sequence[str], known: Sequence[str], field: str) -> None:
    unknown = [n for n in names if n not in set(known)]
    if unknown:
        raise UserError(
            f"pairs.{field} names generator {unknown[0]!r}, which has no traces "
            f"(generators with traces: {', '.join(sorted(known))})"
        )


# ---- strategies --------------------------------------------------------------------


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
    quadrants: Sequence[str] = QUADRANTS,
) -> pd.DataFrame:
    """Pairs with the chosen trace from a more capable generator than the rejected one.

    For every problem and every ordered generator pair (A, B) whose accuracy gap on their
    shared problems is positive and at least ``min_gap`` (A restricted to ``chosen``, B to
    ``rejected`` when given), up to ``per_problem`` (sample of A, sample of B) combinations
    in the candidate ``quadrants`` are kept, in seeded order. Identical texts are never
    paired.
    """
    weights = dict(weights or dict.fromkeys(dimensions, 1.0))
    t = _prepared(traces, scores, generators, weights, seed)
    ids = sorted(t["generator_id"].unique())
    _check_ids(chosen, ids, "chosen")
    _check_ids(rejected, ids, "rejected")
    acc = shared_accuracy(t, t["correct"])
    combos = [
        (a, b)
        for a in ids
        for b in ids
        if a != b
        and (not chosen or a in chosen)
        and (not rejected or b in rejected)
        and acc.loc[a, b] - acc.loc[b, a] > 0
        and acc.loc[a, b] - acc.loc[b, a] >= min_gap - 1e-12
    ]
    if not combos:
        caps = ", ".join(f"{g}={t.loc[t['generator_id'] == g, 'correct'].mean():.2f}" for g in ids)
        raise UserError(
            f"no generator pair has a positive capability gap of at least pairs.min_gap={min_gap} "
            f"(accuracies: {caps})"
        )
    by_gen = {g: df for g, df in t.groupby("generator_id", sort=True)}
    parts = [
        _take(_candidates(by_gen[a], by_gen[b], quadrants), t, ["pcode"], per_problem) for a, b in combos
    ]
    picked = pd.concat([p for p in parts if len(p)] or parts[:1], ignore_index=True)
    if picked.empty:
        raise UserError(
            "no pairs could be built: the generators share no problem with distinct traces "
            f"in quadrants {', '.join(quadrants)}"
        )
    return add_deltas(
        _as_pairs(picked, t, "cross_generator"),
        scores,
        generators,
        weights=weights,
        dimensions=dimensions,
        capability=acc,
    )


def within_generator_pairs(
    traces: pd.DataFrame,
    scores: pd.DataFrame,
    generators: pd.DataFrame,
    *,
    generator_ids: Sequence[str] = (),
    per_problem: int = 1,
    weights: Mapping[str, float] | None = None,
    dimensions: Sequence[str] = DIMENSIONS,
    quadrants: Sequence[str] = QUADRANTS,
) -> pd.DataFrame:
    """Best against worst sample of one generator on one problem, by the judge aggregate.

    Samples are ranked by their weighted judge aggregate (ties: trace id ascending); the
    i-th best is paired with the i-th worst for i < ``per_problem`` while the best scores
    strictly higher and the texts differ. Traces without scores are never ranked.
    """
    weights = dict(weights or dict.fromkeys(dimensions, 1.0))
    t = full = _prepared(traces, scores, generators, weights)
    _check_ids(generator_ids, sorted(t["generator_id"].unique()), "chosen")
    if generator_ids:
        t = t[t["generator_id"].isin(list(generator_ids))]
    t = t[~np.isnan(t["judge_aggregate"].to_numpy())]
    group = ["pcode", "generator_id"]
    best = t.sort_values([*group, "judge_aggregate", "trace_id"], ascending=[True, True, False, True])
    best = best.assign(_i=best.groupby(group, sort=False).cumcount())
    worst = t.sort_values([*group, "judge_aggregate", "trace_id"], ascending=[True, True, True, False])
    worst = worst.assign(_i=worst.groupby(group, sort=False).cumcount())
    size = t.groupby(group)["trace_id"].transform("size")
    limit = np.minimum(per_problem, size // 2)
    best = best[best["_i"].to_numpy() < limit.reindex(best.index).to_numpy()]
    cols = [*group, "_i", "row", "text_hash", "correct", "judge_aggregate"]
    cand = best[cols].merge(worst[cols], on=[*group, "_i"], suffixes=("_c", "_r"))
    keep = (cand["judge_aggregate_c"].to_numpy() > cand["judge_aggregate_r"].to_numpy()) & (
        cand["text_hash_c"].to_numpy() != cand["text_hash_r"].to_numpy()
    )
    keep &= in_quadrants(cand["correct_c"], cand["correct_r"], quadrants)
    picked = cand[keep]
    if picked.empty:
        raise UserError(
            "no within-generator pairs: no generator has two samples of a problem with different "
            "judge aggregates (and distinct texts)"
        )
    acc = shared_accuracy(t, t["correct"]) if len(t) else None
    return add_deltas(
        _as_pairs(picked, full, "within_generator"),
        scores,
        generators,
        weights=weights,
        dimensions=dimensions,
        capability=acc,
    )


def correctness_pairs(
    traces: pd.DataFrame,
    scores: pd.DataFrame,
    generators: pd.DataFrame,
    *,
    chosen: Sequence[str] = (),
    rejected: Sequence[str] = (),
    per_problem: int = 1,
    seed: int = 0,
    weights: Mapping[str, float] | None = None,
    dimensions: Sequence[str] = DIMENSIONS,
) -> pd.DataFrame:
    """A correct trace against an incorrect one on the same problem: the common baseline.

    Any generator may supply either side (restricted by ``chosen`` / ``rejected``); up to
    ``per_problem`` combinations per problem in seeded order. Identical texts are never paired.
    """
    weights = dict(weights or dict.fromkeys(dimensions, 1.0))
    t = _prepared(traces, scores, generators, weights, seed)
    ids = sorted(t["generator_id"].unique())
    _check_ids(chosen, ids, "chosen")
    _check_ids(rejected, ids, "rejected")
    good = t[t["correct"]]
    bad = t[~t["correct"]]
    if chosen:
        good = good[good["generator_id"].isin(list(chosen))]
    if rejected:
        bad = bad[bad["generator_id"].isin(list(rejected))]
    picked = _take(_candidates(good, bad, QUADRANTS), t, ["pcode"], per_problem)
    if picked.empty:
        raise UserError("no correctness pairs: no problem has both a correct and an incorrect trace")
    return add_deltas(
        _as_pairs(picked, t, "correctness"),
        scores,
        generators,
        weights=weights,
        dimensions=dimensions,
        capability=shared_accuracy(t, t["correct"]),
    )


def build_pairs(
    traces: pd.DataFrame,
    scores: pd.DataFrame,
    generators: pd.DataFrame,
    cfg: PairsConfig,
    dimensions: Sequence[str] = DIMENSIONS,
) -> pd.DataFrame:
    """The pairs a :class:`PairsConfig` asks for, flagged pairs kept or dropped."""
    common = {"weights": cfg.weights, "dimensions": dimensions, "per_problem": cfg.per_problem}
    if cfg.strategy == "cross_generator":
        out = cross_generator_pairs(
            traces,
            scores,
            generators,
            chosen=cfg.chosen,
            rejected=cfg.rejected,
            min_gap=cfg.min_gap,
            seed=cfg.seed,
            quadrants=cfg.quadrants,
            **common,
        )
    elif cfg.strategy == "within_generator":
        out = within_generator_pairs(
            traces, scores, generators, generator_ids=cfg.chosen, quadrants=cfg.quadrants, **common
        )
    else:
        out = correctness_pairs(
            traces, scores, generators, chosen=cfg.chosen, rejected=cfg.rejected, seed=cfg.seed, **common
        )
    if cfg.within and cfg.strategy != "within_generator":
        equal = within_generator_pairs(
            traces, scores, generators, generator_ids=cfg.within, quadrants=cfg.quadrants, **common
        )
        out = pd.concat([out, equal], ignore_index=True)
    out = flag_pairs(out, cfg.flag_key)
    if cfg.flagged == "drop":
        out = out[~out["flagged"]].reset_index(drop=True)
        if out.empty:
            raise UserError(
                f"every pair is flagged (chosen scores below rejected on {cfg.flag_key}); "
                "with pairs.flagged=drop nothing is left"
            )
    return out


# ---- deltas ------------------------------------------------------------------------


def in_quadrants(chosen_correct: object, rejected_correct: object, quadrants: Sequence[str]) -> np.ndarray:
    """Boolean mask: the (chosen, rejected) correctness falls in one of ``quadrants``."""
    c = np.asarray(chosen_correct, dtype=bool)
    r = np.asarray(rejected_correct, dtype=bool)
    mask = np.zeros(len(c), dtype=bool)
    for q in quadrants:
        mask |= (c == (q[0] == "C")) & (r == (q[1] == "C"))
    return mask


def _quadrant(chosen_correct: pd.Series, rejected_correct: pd.Series) -> pd.Series:
    c = np.where(np.asarray(chosen_correct, dtype=bool), "C", "W").astype(object)
    r = np.where(np.asarray(rejected_correct, dtype=bool), "C", "W").astype(object)
    return pd.Series(c + r, index=getattr(chosen_correct, "index", None))


def add_deltas(
    pairs: pd.DataFrame,
    scores: pd.DataFrame,
    generators: pd.DataFrame,
    *,
    weights: Mapping[str, float] | None = None,
    dimensions: Sequence[str] = DIMENSIONS,
    capability: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Add pair ids, generator-level and sample-level deltas, correctness and quadrant.

    ``capability`` is a :func:`shared_accuracy` matrix; without it the generators table's
    ``capability`` column is used. A pair whose trace has no judgment is an error.
    """
    weights = dict(weights or dict.fromkeys(dimensions, 1.0))
    known = pd.Index(scores.index.drop_duplicates())
    for side in ("chosen", "rejected"):
        ids = pairs[f"{side}_trace_id"].to_numpy(dtype=object)
        missing = known.get_indexer(ids) < 0
        if missing.any():
            raise UserError(
                f"pair {side} trace {ids[missing][0]!r} has no judgment; every paired trace must be judged"
            )
    out = pairs.reset_index(drop=True)
    out.insert(
        0,
        "pair_id",
        [stable_hash(c, r) for c, r in zip(out["chosen_trace_id"], out["rejected_trace_id"], strict=True)],
    )
    ch = scores.reindex(out["chosen_trace_id"])
    rj = scores.reindex(out["rejected_trace_id"])
    gens = generators.drop_duplicates("generator_id").set_index("generator_id")
    cg, rg = out["chosen_generator"], out["rejected_generator"]
    if capability is not None:
        gi = {g: i for i, g in enumerate(capability.index)}
        ci = cg.map(gi).to_numpy()
        ri = rg.map(gi).to_numpy()
        mat = capability.to_numpy(dtype=float)
        out["chosen_capability"] = mat[ci, ri]
        out["rejected_capability"] = mat[ri, ci]
    else:
        cap = gens["capability"].astype(float)
        out["chosen_capability"] = cap.reindex(cg).to_numpy()
        out["rejected_capability"] = cap.reindex(rg).to_numpy()
    out["generator_gap"] = out["chosen_capability"] - out["rejected_capability"]
    if "params" in gens.columns:
        params = pd.to_numeric(gens["params"], errors="coerce").astype(float)
        out["param_ratio"] = params.reindex(cg).to_numpy() / params.reindex(rg).to_numpy()
    else:
        out["param_ratio"] = np.nan
    if "family" in gens.columns:
        out["same_family"] = gens["family"].reindex(cg).to_numpy() == gens["family"].reindex(rg).to_numpy()
    else:
        out["same_family"] = cg.to_numpy() == rg.to_numpy()
    agg = np.zeros(len(out))
    total_w = 0.0
    for d in dimensions:
        out[f"delta_{d}"] = ch[d].to_numpy(dtype=float) - rj[d].to_numpy(dtype=float)
    out["chosen_correct"] = ch["correct"].fillna(False).to_numpy(dtype=bool)
    out["rejected_correct"] = rj["correct"].fillna(False).to_numpy(dtype=bool)
    out["delta_outcome"] = out["chosen_correct"].astype(float) - out["rejected_correct"].astype(float)
    for d, w in weights.items():
        if w:
            agg = agg + w * out[f"delta_{d}"].to_numpy(dtype=float)
            total_w += w
    out["delta_aggregate"] = agg / (total_w or 1.0)
    out["quadrant"] = _quadrant(out["chosen_correct"], out["rejected_correct"]).to_numpy()
    out = flag_pairs(out, "aggregate")
    return out.sort_values(
        ["problem_id", "chosen_generator", "rejected_generator", "pair_id"], ignore_index=True
    )


def flag_pairs(pairs: pd.DataFrame, key: str = "aggregate") -> pd.DataFrame:
    """Set ``flagged``: the chosen trace scores below the rejected one on ``key``'s delta."""
    col = f"delta_{key}"
    if col not in pairs.columns:
        raise UserError(f"unknown flag key {key!r}: the pairs table has no column '{col}'")
    out = pairs.copy()
    out["flagged"] = out[col].to_numpy(dtype=float) < 0
    return out


def filter_quadrants(pairs: pd.DataFrame, quadrants: Sequence[str]) -> pd.DataFrame:
    """The pairs in the given correctness quadrants (``CC``, ``CW``, ``WC``, ``WW``)."""
    bad = [q for q in quadrants if q not in QUADRANTS]
    if bad:
        raise UserError(f"unknown quadrant {bad[0]!r}; expected one of {', '.join(QUADRANTS)}")
    return pairs[pairs["quadrant"].isin(list(quadrants))].reset_index(drop=True)


def check_references(pairs: pd.DataFrame, traces: pd.DataFrame, problems: pd.DataFrame | None = None) -> None:
    """Raise when a pair references a trace (or problem) that is not in its table."""
    known = pd.Index(traces["trace_id"].drop_duplicates())
    for side in ("chosen", "rejected"):
        col = f"{side}_trace_id"
        missing = known.get_indexer(pairs[col].to_numpy(dtype=object)) < 0
        if missing.any():
            row = pairs[missing].iloc[0]
            raise UserError(
                f"pair {row['pair_id']!r} references {side} trace {row[col]!r}, which is not in the "
                f"traces table ({int(missing.sum())} such pairs)"
            )
    if problems is not None:
        known_p = pd.Index(problems["problem_id"].drop_duplicates())
        missing = known_p.get_indexer(pairs["problem_id"].to_numpy(dtype=object)) < 0
        if missing.any():
            row = pairs[missing].iloc[0]
            raise UserError(
                f"pair {row['pair_id']!r} references problem {row['problem_id']!r}, which is not in "
                "the problems table"
            )
