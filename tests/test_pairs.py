"""Pair building: strategies, matching rules, generator- and sample-level deltas, bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from prefdelta.errors import UserError
from prefdelta.judge.dimensions import DIMENSIONS
from prefdelta.pairs import build as pairs
from prefdelta.pairs.config import PairsConfig


def synth(
    n_problems: int = 40,
    gens: tuple[str, ...] = ("g0", "g1", "g2"),
    samples: int = 3,
    seed: int = 0,
    repeats: int = 1,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Traces, judgments and generators: generator i is correct with probability 0.2 + 0.3 i."""
    rng = np.random.default_rng(seed)
    trows, jrows = [], []
    for gi, g in enumerate(gens):
        for p in range(n_problems):
            for s in range(samples):
                tid = f"{g}-p{p:04d}-s{s}"
                trows.append(
                    {
                        "trace_id": tid,
                        "problem_id": f"p{p:04d}",
                        "generator_id": g,
                        "text": f"text {rng.integers(0, 6)}",
                    }
                )
                ok = bool(rng.random() < 0.2 + 0.3 * gi)
                for r in range(repeats):
                    scores = {d: float(rng.integers(1, 6)) for d in DIMENSIONS}
                    jrows.append({"trace_id": tid, "repeat": r, "outcome": ok, **scores})
    gtab = pd.DataFrame(
        {
            "generator_id": list(gens),
            "family": ["llama" if i % 2 == 0 else "gpt2" for i in range(len(gens))],
            "params": [1e6 * 2**i for i in range(len(gens))],
        }
    )
    return pd.DataFrame(trows), pd.DataFrame(jrows), gtab


@pytest.fixture(scope="module")
def world():
    traces, judgments, gens = synth()
    return traces, pairs.trace_scores(judgments), gens


def _texts(traces: pd.DataFrame) -> pd.Series:
    return traces.set_index("trace_id")["text"]


def test_cross_generator_chosen_from_more_capable_one_per_problem(world):
    traces, scores, gens = world
    out = pairs.cross_generator_pairs(traces, scores, gens)
    assert (out["generator_gap"] > 0).all()
    assert (out["chosen_capability"] > out["rejected_capability"]).all()
    assert out.groupby(["chosen_generator", "rejected_generator", "problem_id"]).size().max() == 1
    text = _texts(traces)
    assert (text[out["chosen_trace_id"]].to_numpy() != text[out["rejected_trace_id"]].to_numpy()).all()
    assert out["pair_id"].is_unique
    # capability: accuracy of each generator on the problems both answered
    acc = (
        traces.assign(c=scores["correct"].reindex(traces["trace_id"]).to_numpy())
        .groupby("generator_id")["c"]
        .mean()
    )
    row = out.iloc[0]
    assert row["generator_gap"] == pytest.approx(
        acc[row["chosen_generator"]] - acc[row["rejected_generator"]]
    )


def test_all_combinations_up_to_cap_and_identical_texts_never_paired(world):
    traces, scores, gens = world
    out = pairs.cross_generator_pairs(traces, scores, gens, chosen=["g2"], rejected=["g0"], per_problem=100)
    t = traces.set_index("trace_id")
    expected = 0
    for pid in traces["problem_id"].unique():
        a = t[(t["problem_id"] == pid) & (t["generator_id"] == "g2")]["text"]
        b = t[(t["problem_id"] == pid) & (t["generator_id"] == "g0")]["text"]
        expected += sum(x != y for x in a for y in b)
    assert len(out) == expected > 0
    capped = pairs.cross_generator_pairs(traces, scores, gens, chosen=["g2"], rejected=["g0"], per_problem=4)
    assert capped.groupby("problem_id").size().max() == 4
    assert set(capped["pair_id"]) <= set(out["pair_id"])


def test_matching_deterministic_order_free_and_seeded(world):
    traces, scores, gens = world
    a = pairs.cross_generator_pairs(traces, scores, gens, seed=3)
    b = pairs.cross_generator_pairs(traces.sample(frac=1, random_state=1), scores, gens, seed=3)
    pd.testing.assert_frame_equal(a, b)
    c = pairs.cross_generator_pairs(traces, scores, gens, seed=4)
    assert set(a["pair_id"]) != set(c["pair_id"])


def test_correctness_filter_and_min_gap(world):
    traces, scores, gens = world
    out = pairs.cross_generator_pairs(traces, scores, gens, quadrants=["CC", "CW"], per_problem=2)
    assert out["chosen_correct"].all()
    assert set(out["quadrant"]) <= {"CC", "CW"}
    gaps = pairs.cross_generator_pairs(traces, scores, gens)["generator_gap"]
    wide = pairs.cross_generator_pairs(traces, scores, gens, min_gap=float(gaps.max()) - 1e-9)
    assert (wide["generator_gap"] >= gaps.max() - 1e-9).all()
    assert wide.groupby(["chosen_generator", "rejected_generator"]).ngroups == 1
    with pytest.raises(UserError, match="min_gap"):
        pairs.cross_generator_pairs(traces, scores, gens, min_gap=0.99)


def test_generator_level_delta_on_shared_problems():
    traces, judgments, gens = synth(n_problems=4, gens=("a", "b"), samples=1)
    judgments["outcome"] = judgments["trace_id"].str.startswith("a")
    # b is wrong everywhere but answered only 2 problems; a is right on 4
    traces = traces[~traces["trace_id"].isin(["b-p0002-s0", "b-p0003-s0"])]
    judgments.loc[judgments["trace_id"] == "a-p0000-s0", "outcome"] = False
    out = pairs.cross_generator_pairs(traces, pairs.trace_scores(judgments), gens)
    # on the shared problems p0, p1: a 1/2, b 0/2
    assert out["chosen_capability"].unique().tolist() == [0.5]
    assert out["rejected_capability"].unique().tolist() == [0.0]
    assert out["param_ratio"].unique().tolist() == [0.5]
    assert not out["same_family"].any()


def test_sample_delta_averages_repeats_and_weights():
    traces, judgments, gens = synth(n_problems=3, gens=("a", "b"), samples=1, repeats=3)
    judgments["outcome"] = judgments["trace_id"].str.startswith("b")
    scores = pairs.trace_scores(judgments)
    weights = {"step_coherence": 3.0, "factuality": 1.0}
    out = pairs.cross_generator_pairs(traces, scores, gens, weights=weights)
    mean = judgments.groupby("trace_id")[list(DIMENSIONS)].mean()
    for _, r in out.iterrows():
        for d in DIMENSIONS:
            assert r[f"delta_{d}"] == pytest.approx(
                mean.loc[r["chosen_trace_id"], d] - mean.loc[r["rejected_trace_id"], d]
            )
        agg = (3 * r["delta_step_coherence"] + r["delta_factuality"]) / 4
        assert r["delta_aggregate"] == pytest.approx(agg)
        assert r["flagged"] == (agg < 0)
        assert r["quadrant"] == "CW" and r["delta_outcome"] == 1.0


def test_trace_scores_skip_errors_and_unknown_outcome_is_not_correct():
    j = pd.DataFrame(
        {
            "trace_id": ["t", "t", "u"],
            "outcome": [True, np.nan, np.nan],
            "error": [None, "timeout", None],
            **{d: [2.0, 5.0, 3.0] for d in DIMENSIONS},
        }
    )
    s = pairs.trace_scores(j)
    assert s.loc["t", "step_coherence"] == 2.0
    assert bool(s.loc["t", "correct"]) and not bool(s.loc["u", "correct"])


def test_within_generator_best_vs_worst(world):
    traces, scores, gens = world
    out = pairs.within_generator_pairs(traces, scores, gens, weights=dict.fromkeys(DIMENSIONS, 1.0))
    assert (out["chosen_generator"] == out["rejected_generator"]).all()
    assert (out["generator_gap"] == 0).all()
    assert out.groupby(["chosen_generator", "problem_id"]).size().max() == 1
    agg = scores[list(DIMENSIONS)].mean(axis=1)
    assert (agg[out["chosen_trace_id"]].to_numpy() > agg[out["rejected_trace_id"]].to_numpy()).all()
    # the chosen is the best sample and the rejected the worst
    t = traces.assign(agg=agg[traces["trace_id"]].to_numpy())
    first = out.iloc[0]
    group = t[(t["problem_id"] == first["problem_id"]) & (t["generator_id"] == first["chosen_generator"])]
    assert agg[first["chosen_trace_id"]] == group["agg"].max()
    assert agg[first["rejected_trace_id"]] == group["agg"].min()
    only = pairs.within_generator_pairs(traces, scores, gens, generator_ids=["g1"], per_problem=2)
    assert set(only["chosen_generator"]) == {"g1"}
    assert only["chosen_trace_id"].str.startswith("g1-").all()
    assert only["rejected_trace_id"].str.startswith("g1-").all()
    assert only.groupby("problem_id").size().max() == 1  # 3 samples: one disjoint best/worst pair


def test_correctness_pairs_correct_vs_incorrect(world):
    traces, scores, gens = world
    out = pairs.correctness_pairs(traces, scores, gens, per_problem=2)
    assert (out["quadrant"] == "CW").all()
    assert out.groupby("problem_id").size().max() <= 2


def test_build_pairs_drop_flagged_and_quadrant_filter(world):
    traces, scores, gens = world
    kept = pairs.build_pairs(traces, scores, gens, PairsConfig())
    dropped = pairs.build_pairs(traces, scores, gens, PairsConfig(flagged="drop"))
    assert kept["flagged"].any() and not dropped["flagged"].any()
    assert len(dropped) == (~kept["flagged"]).sum()
    by_step = pairs.build_pairs(traces, scores, gens, PairsConfig(flag_key="step_coherence"))
    assert (by_step["flagged"] == (by_step["delta_step_coherence"] < 0)).all()
    cw = pairs.filter_quadrants(kept, ["CW"])
    assert len(cw) == (kept["quadrant"] == "CW").sum()
    within = pairs.build_pairs(traces, scores, gens, PairsConfig(strategy="within_generator"))
    assert set(within["strategy"]) == {"within_generator"}


def test_bad_input_is_a_clear_error(world):
    traces, scores, gens = world
    with pytest.raises(UserError, match="has no judgment"):
        pairs.cross_generator_pairs(traces, scores.drop(index=traces["trace_id"].iloc[5]), gens)
    with pytest.raises(UserError, match="not in the generators table"):
        pairs.cross_generator_pairs(traces, scores, gens[gens["generator_id"] != "g1"])
    with pytest.raises(UserError, match="'nope'"):
        pairs.cross_generator_pairs(traces, scores, gens, chosen=["nope"])
    with pytest.raises(UserError, match="lacks column 'text'"):
        pairs.cross_generator_pairs(traces.drop(columns="text"), scores, gens)
    with pytest.raises(UserError, match="lacks column 'factuality'"):
        pairs.trace_scores(pd.DataFrame({"trace_id": ["t"], "outcome": [True]}))
    built = pairs.cross_generator_pairs(traces, scores, gens)
    with pytest.raises(UserError, match="not in the traces table"):
        pairs.check_references(built, traces.iloc[1:])
    with pytest.raises(UserError, match="has no judgment"):
        pairs.add_deltas(
            built[
                [
                    "problem_id",
                    "chosen_trace_id",
                    "rejected_trace_id",
                    "chosen_generator",
                    "rejected_generator",
                ]
            ],
            scores.iloc[3:],
            gens,
        )
    with pytest.raises(UserError, match="unknown quadrant"):
        pairs.filter_quadrants(built, ["XX"])
    with pytest.raises(ValueError, match="unknown dimension"):
        PairsConfig(weights={"charm": 1.0})
