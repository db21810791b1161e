"""The report's analysis tables on synthetic studies whose answers are known."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from prefdelta.report import analysis

N = 400  # problems per suite


def _samples(model: str, suite: str, p_correct: float, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "model_id": model,
            "suite": suite,
            "problem_id": [f"{suite}-{i}" for i in range(N)],
            "correct": rng.random(N) < p_correct,
        }
    )


def _study(cell_effects: dict[str, tuple[float, float]], seeds: int = 3):
    """runs, samples: the student at 40% on suites 'id' and 'ood'; each cell's runs at
    40% + its (id, ood) effect, per seed."""
    runs, frames = [], [_samples("student", "id", 0.4, 0), _samples("student", "ood", 0.4, 1)]
    for k, (strategy, (d_id, d_ood)) in enumerate(cell_effects.items()):
        for s in range(seeds):
            rid = f"dpo-{k}-s{s}"
            runs.append({"run_id": rid, "variant": "dpo", "algorithm": "dpo", "strategy": strategy, "n_pairs": 50,
                         "seed": s, "onpolicy_chosen": -0.2, "onpolicy_rejected": -0.5})  # fmt: skip
            # equal effects, equal draws: cells meant to be the same differ by nothing
            frames += [
                _samples(rid, "id", 0.4 + d_id, 100 + round(1000 * d_id) + s),
                _samples(rid, "ood", 0.4 + d_ood, 5000 + round(1000 * d_ood) + s),
            ]
    return pd.DataFrame(runs), pd.concat(frames, ignore_index=True)


def _tables(effects: dict[str, tuple[float, float]], gaps: dict[str, float]):
    runs, samples = _study(effects)
    gains = analysis.compute_gains(runs, samples, "student", {"id": "in", "ood": "out"})
    pairs = pd.DataFrame({"pair_id": [f"p{i}" for i in range(len(effects))],
                          "generator_gap": [gaps.get(s, 0.5) for s in effects],
                          **{f"delta_{k}": np.arange(len(effects), dtype=float) for k in analysis.DELTA_KEYS}})  # fmt: skip
    selections = pd.DataFrame({"strategy": list(effects), "pair_id": list(pairs["pair_id"])})
    cells = analysis.cell_table(gains, runs, selections, pairs, ["id", "ood"])
    return gains, cells


def test_gains_are_paired_differences_with_intervals():
    _gains, cells = _tables({"grid:g:top:step_coherence:0.3": (0.25, 0.0)}, {})
    row = cells.iloc[0]
    assert row["gain_in"] == pytest.approx(0.25, abs=0.06)
    assert row["gain_in_lo"] > 0.1 and row["gain_out_lo"] < 0 < row["gain_out_hi"]
    assert row["kind"] == "top" and row["key"] == "step_coherence" and row["fraction"] == 0.3
    assert row["seeds"] == 3 and row["onpolicy_rejected"] == -0.5


def test_ladder_slope_and_its_verdict_follow_the_data():
    rising = {f"ladder:ladder:g{i}>g0": (0.0, 0.08 * i) for i in range(4)}
    gains, cells = _tables(rising, {s: 0.2 * i for i, s in enumerate(rising)})
    slopes = analysis.slope_table(gains, cells)
    r = slopes.iloc[0]
    assert r["fixed"] == "rejected" and r["rungs"] == 4
    assert r["slope_out"] == pytest.approx(0.4, abs=0.1) and r["slope_out_lo"] > 0
    assert r["slope_in_lo"] < 0 < r["slope_in_hi"]
    v = analysis.verdicts(slopes, analysis.contrast_table(gains, cells), cells)
    assert list(v["verdict"]) == ["reproduced"]
    falling = {f"ladder:ladder:g{i}>g0": (0.0, 0.3 - 0.09 * i) for i in range(4)}
    gains, cells = _tables(falling, {s: 0.2 * i for i, s in enumerate(falling)})
    v = analysis.verdicts(analysis.slope_table(gains, cells), analysis.contrast_table(gains, cells), cells)
    assert list(v["verdict"]) == ["not reproduced"]


def test_top_random_all_contrasts_and_the_selection_verdict():
    effects = {
        "grid:g:top:step_coherence:0.3": (0.2, 0.1),
        "grid:g:random:step_coherence:0.3": (0.0, 0.0),
        "grid:g:all": (0.2, 0.1),
        "grid:g:top:outcome:0.3": (0.15, 0.05),
        "grid:g:quadrant:CW": (0.1, 0.0),
        "grid:g:quadrant:CC+WW": (0.0, 0.0),
    }
    gains, cells = _tables(effects, {})
    contrasts = analysis.contrast_table(gains, cells).set_index("contrast")
    assert contrasts.loc["top 0.3 step_coherence − random", "in_lo"] > 0.1
    assert contrasts.loc["top 0.3 step_coherence − all", "in"] == 0  # the same effect, the same draws
    assert contrasts.loc["quadrant CW − CC+WW", "in"] == pytest.approx(0.1, abs=0.07)
    v = analysis.verdicts(analysis.slope_table(gains, cells), analysis.contrast_table(gains, cells), cells)
    verdict = dict(zip(v["finding"], v["verdict"], strict=True))
    assert (
        verdict["the top 30% by step-coherence delta matches all pairs and beats a random 30%"]
        == "reproduced"
    )
    assert verdict["outcome correctness contributes but does not dominate"] == "reproduced"


def test_smallest_fraction_reaching_the_full_gain():
    effects = {
        "grid:g:top:step_coherence:0.1": (0.05, 0.0),
        "grid:g:top:step_coherence:0.3": (0.2, 0.0),
        "grid:g:top:step_coherence:0.5": (0.2, 0.0),
        "grid:g:all": (0.2, 0.0),
    }
    gains, cells = _tables(effects, {})
    f = analysis.fraction_table(gains, cells)
    row = f[(f["key"] == "step_coherence") & (f["scope"] == "in")].iloc[0]
    assert row["fraction_95"] == 0.3 and row["lo"] >= 0.1 and row["hi"] >= 0.3
    assert analysis.regression_table(cells)["predictor"].iloc[0] == "(not estimable)"
