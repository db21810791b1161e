"""Selections: exact top-k with the documented tie rule, seeded random, stratified, bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from prefdelta.errors import UserError
from prefdelta.select import strategies as select
from prefdelta.select.config import SelectConfig


def make_pairs(n: int = 200, problems: int = 20, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "pair_id": [f"{i:04x}" for i in rng.permutation(n)],
            "problem_id": [f"p{i % problems:02d}" for i in range(n)],
            # few distinct values, so ties are everywhere
            "delta_step_coherence": rng.integers(-2, 3, n).astype(float),
            "delta_aggregate": rng.normal(size=n),
            "generator_gap": rng.random(n),
            "quadrant": rng.choice(["CC", "CW", "WC", "WW"], n),
        }
    )


def brute_top(p: pd.DataFrame, col: str, k: int, bottom: bool = False) -> list[str]:
    rows = sorted(
        ((v, pid) for v, pid in zip(p[col], p["pair_id"], strict=True) if not np.isnan(v)),
        key=lambda r: (r[0] if bottom else -r[0], r[1]),
    )
    return [pid for _, pid in rows[:k]]


def test_top_k_exact_with_pair_id_tie_rule_and_order_free():
    p = make_pairs()
    for frac in (0.05, 0.3, 0.77, 1.0):
        got = select.select_top(p, "step_coherence", frac)
        k = select.size_of(len(p), frac)
        assert got["pair_id"].tolist() == brute_top(p, "delta_step_coherence", k)
        assert got["rank"].tolist() == list(range(k))
    bottom = select.select_top(p, "step_coherence", k=17, bottom=True)
    assert bottom["pair_id"].tolist() == brute_top(p, "delta_step_coherence", 17, bottom=True)
    shuffled = select.select_top(p.sample(frac=1, random_state=3), "step_coherence", 0.3)
    pd.testing.assert_frame_equal(shuffled, select.select_top(p, "step_coherence", 0.3))


def test_nan_keys_never_ranked_and_random_draws_from_same_pool():
    p = make_pairs()
    p.loc[p.index[:50], "delta_step_coherence"] = np.nan
    top = select.select_top(p, "step_coherence", 1.0)
    assert len(top) == 150
    rnd = select.select_random(p, 0.3, seed=0, key="step_coherence")
    assert len(rnd) == select.size_of(150, 0.3)
    assert set(rnd["pair_id"]) <= set(top["pair_id"])


def test_random_deterministic_per_seed_and_differs_across_seeds():
    p = make_pairs()
    a = select.select_random(p, 0.3, seed=1)
    b = select.select_random(p.sample(frac=1, random_state=9), 0.3, seed=1)
    c = select.select_random(p, 0.3, seed=2)
    assert a["pair_id"].tolist() == b["pair_id"].tolist()
    assert len(a) == len(c) == len(select.select_top(p, "aggregate", 0.3))
    assert set(a["pair_id"]) != set(c["pair_id"])
    assert a["selection_id"].iloc[0] != c["selection_id"].iloc[0]


def test_stratified_selection_no_problem_dominates():
    p = make_pairs(n=200, problems=20)
    # problem p00 holds the 10 best pairs by far
    p.loc[p["problem_id"] == "p00", "delta_aggregate"] = 100.0
    plain = select.select_top(p, "aggregate", k=20)
    strat = select.select_top(p, "aggregate", k=20, stratify=True)
    per = p.set_index("pair_id").loc[strat["pair_id"], "problem_id"].value_counts()
    assert p.set_index("pair_id").loc[plain["pair_id"], "problem_id"].value_counts().max() == 10
    assert per.max() == 1 and len(per) == 20
    # within the round-robin, each problem's best pair is taken
    best = (
        p.sort_values(["delta_aggregate", "pair_id"], ascending=[False, True]).groupby("problem_id").head(1)
    )
    assert set(strat["pair_id"]) == set(best["pair_id"])
    rs = select.select_random(p, k=40, seed=0, stratify=True)
    assert p.set_index("pair_id").loc[rs["pair_id"], "problem_id"].value_counts().max() == 2


def test_quadrant_pool_and_selections_for_config():
    p = make_pairs()
    q = select.select_quadrant(p, ["CW"])
    assert set(q["pair_id"]) == set(p.loc[p["quadrant"] == "CW", "pair_id"])
    assert q["strategy"].iloc[0] == "quadrant"
    df = select.selections_for(
        p, SelectConfig(key="step_coherence", fraction=0.3, bottom=True, quadrants=["CC", "CW"])
    )
    assert df.groupby("strategy").size().to_dict() == {
        "all": int(p["quadrant"].isin(["CC", "CW"]).sum()),
        "bottom": select.size_of(97, 0.3),
        "random": select.size_of(97, 0.3),
        "top": select.size_of(97, 0.3),
    }
    assert set(df["quadrants"]) == {"CC,CW"}
    default = select.selections_for(p, SelectConfig())
    assert sorted(default["selection_id"].unique()) == [
        "all-all-1",
        "random-step_coherence-0.3-s0",
        "top-step_coherence-0.3",
    ]


def test_bad_input_is_a_clear_error():
    p = make_pairs()
    with pytest.raises(UserError, match="unknown selection key 'charm'"):
        select.select_top(p, "charm", 0.3)
    with pytest.raises(UserError, match="lacks"):
        select.select_top(p, "factuality", 0.3)
    with pytest.raises(UserError, match="empty"):
        select.select_top(p.iloc[:0], "aggregate", 0.3)
    p["delta_step_coherence"] = np.nan
    with pytest.raises(UserError, match="would be empty"):
        select.select_top(p, "step_coherence", 0.3)
    with pytest.raises(UserError, match="fraction"):
        select.select_random(make_pairs(), 1.5, seed=0)
    with pytest.raises(UserError, match="unknown quadrant"):
        select.select_quadrant(make_pairs(), ["XY"])
    with pytest.raises(ValueError, match="unknown key"):
        SelectConfig(key="charm")


def test_one_selection_per_generator_pair_of_equal_size():
    p = make_pairs(300)
    rng = np.random.default_rng(1)
    gens = rng.choice([("a", "b"), ("a", "c"), ("b", "c")], size=len(p), p=[0.5, 0.3, 0.2])
    p["chosen_generator"] = [g[0] for g in gens]
    p["rejected_generator"] = [g[1] for g in gens]
    smallest = p.groupby(["chosen_generator", "rejected_generator"]).size().min()
    sel = select.select_by_generator_pair(p, seed=0)
    assert set(sel["strategy"]) == {"gen:a>b", "gen:a>c", "gen:b>c"}
    assert sel.groupby("strategy").size().eq(smallest).all()
    by_id = p.set_index("pair_id")
    for strategy, g in sel.groupby("strategy"):
        a, b = strategy.removeprefix("gen:").split(">")
        picked = by_id.loc[g["pair_id"]]
        assert (picked["chosen_generator"] == a).all() and (picked["rejected_generator"] == b).all()
        assert g["selection_id"].nunique() == 1 and ">" not in g["selection_id"].iloc[0]
    again = select.select_by_generator_pair(p.sample(frac=1, random_state=3), seed=0)
    pd.testing.assert_frame_equal(sel.reset_index(drop=True), again.reset_index(drop=True))
    other = select.select_by_generator_pair(p, seed=1)
    assert set(other["pair_id"]) != set(sel["pair_id"])
    assert select.matches("gen:a>b", "gen") and not select.matches("gen:a>b", "top")
    cfg = SelectConfig(by_generator_pair=True)
    assert {"top", "random", "all", "gen:a>b"} <= set(select.selections_for(p, cfg)["strategy"])


def _study_pairs():
    """Pairs of four generators (g3 strongest) plus within-generator pairs of g0."""
    from prefdelta.pairs.build import build_pairs, trace_scores
    from prefdelta.pairs.config import PairsConfig
    from test_pairs import synth

    traces, judgments, gens = synth(n_problems=60, gens=("g0", "g1", "g2", "g3"), samples=2)
    return build_pairs(traces, trace_scores(judgments), gens, PairsConfig(within=["g0"]))


def test_ladder_fixes_one_side_and_draws_equal_size_rungs():
    from prefdelta.select.config import LadderConfig

    pairs = _study_pairs()
    assert ((pairs["chosen_generator"] == "g0") & (pairs["rejected_generator"] == "g0")).any()
    sel = select.select_ladder(pairs, LadderConfig(generator="g0", seed=3))
    rungs = list(dict.fromkeys(sel["strategy"]))
    assert rungs[0] == "ladder:ladder:g0>g0"  # the equal rung first
    assert {r.split(":")[2].split(">")[1] for r in rungs} == {"g0"}  # rejected fixed
    sizes = sel.groupby("strategy").size()
    assert sizes.nunique() == 1
    by_id = pairs.set_index("pair_id")
    for strategy, g in sel.groupby("strategy"):
        chosen = strategy.split(":")[2].split(">")[0]
        assert (by_id.loc[g["pair_id"], "chosen_generator"] == chosen).all()
    gaps = [by_id.loc[sel[sel["strategy"] == r]["pair_id"], "generator_gap"].mean() for r in rungs]
    assert gaps == sorted(gaps)  # nearest rung first
    again = select.select_ladder(pairs, LadderConfig(generator="g0", seed=3))
    assert again.equals(sel)
    mirror = select.select_ladder(pairs, LadderConfig(generator="g3", fixed="chosen", equal=False))
    assert {s.split(":")[2].split(">")[0] for s in mirror["strategy"]} == {"g3"}


def test_ladders_of_one_study_share_their_size_and_the_crossing_cell() -> None:
    from prefdelta.select.config import LadderConfig

    pairs = _study_pairs()
    ladder = LadderConfig(name="up", generator="g0", rungs=["g1", "g3"])
    mirror = LadderConfig(name="down", generator="g3", fixed="chosen", equal=False, rungs=["g2", "g0"])
    own = {
        lad.name: select.select_ladder(pairs, lad).groupby("strategy").size().iloc[0]
        for lad in (ladder, mirror)
    }
    sel = select.selections_for(pairs, SelectConfig(basic=False, ladders=[ladder, mirror]))
    sizes = sel.groupby("strategy").size()
    assert sizes.nunique() == 1 and sizes.iloc[0] == min(own.values())
    # g3 over g0 is a rung of both designs: one draw, the same pairs under both names
    up = set(sel.loc[sel["strategy"] == "ladder:up:g3>g0", "pair_id"])
    down = set(sel.loc[sel["strategy"] == "ladder:down:g3>g0", "pair_id"])
    assert up == down and len(up) == sizes.iloc[0]
    apart = select.selections_for(
        pairs, SelectConfig(basic=False, ladders=[ladder, mirror], ladders_share_size=False)
    )
    assert {k: v for k, v in apart.groupby("strategy").size().items()} == {
        **{s: own["up"] for s in sizes.index if s.startswith("ladder:up:")},
        **{s: own["down"] for s in sizes.index if s.startswith("ladder:down:")},
    }
    assert own["up"] != own["down"]  # else this test would not tell shared from separate sizes


def test_grid_cells_inside_the_widest_generator_pair():
    from prefdelta.select.config import GridConfig

    pairs = _study_pairs()
    cfg = GridConfig(
        keys=["step_coherence", "outcome"], fractions=[0.1, 0.5], quadrants=[["CW"], ["CC", "WW"]]
    )
    sel = select.select_grid(pairs, cfg)
    cells = sel.groupby("strategy").size()
    assert len(cells) == 2 * 2 * 3 + 1 + 2
    chosen, rejected = select.widest_pair(pairs)
    pool = select.generator_pool(pairs, chosen, rejected)
    assert set(sel["pair_id"]) <= set(pool["pair_id"])
    assert cells["grid:grid:all"] == len(pool)
    top = sel[sel["strategy"] == "grid:grid:top:step_coherence:0.5"]["pair_id"]
    assert list(top) == brute_top(pool, "delta_step_coherence", len(top))
    rnd_a = set(sel[sel["strategy"] == "grid:grid:random:step_coherence:0.5"]["pair_id"])
    rnd_b = set(sel[sel["strategy"] == "grid:grid:random:outcome:0.5"]["pair_id"])
    assert rnd_a == rnd_b  # the same control draw for every key
    q = pool.set_index("pair_id").loc[
        sel[sel["strategy"] == "grid:grid:quadrant:CC+WW"]["pair_id"], "quadrant"
    ]
    assert set(q) <= {"CC", "WW"}
    assert select.matches("grid:grid:top:outcome:0.1", "grid") and select.matches("ladder:x:a>b", "ladder:x")
    assert not select.matches("grid:gridx:all", "grid:grid")


def test_grid_naming_an_unknown_generator_pair_is_a_clear_error():
    from prefdelta.select.config import GridConfig

    with pytest.raises(UserError, match="no pairs with chosen 'g9' and rejected 'g0'"):
        select.select_grid(_study_pairs(), GridConfig(chosen="g9", rejected="g0"))
