"""Pair-set statistics: counts, quadrants, delta distributions, correlation, PNG plots."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from prefdelta.errors import UserError
from prefdelta.pairs import build as pairs
from prefdelta.pairs import stats as pairs_stats
from test_pairs import synth


@pytest.fixture(scope="module")
def built() -> pd.DataFrame:
    traces, judgments, gens = synth(n_problems=30, samples=2)
    return pairs.cross_generator_pairs(traces, pairs.trace_scores(judgments), gens, per_problem=2)


def test_counts_quadrants_and_deltas(built):
    s = pairs_stats.pair_stats(built)
    assert s.counts["pairs"] == len(built)
    assert s.counts["problems"] == built["problem_id"].nunique()
    assert s.counts["generator_pairs"] == 3
    assert s.counts["flagged"] == int((built["delta_aggregate"] < 0).sum())
    assert s.quadrants["pairs"].sum() == len(built)
    assert s.quadrants.loc["CW", "pairs"] == (built["chosen_correct"] & ~built["rejected_correct"]).sum()
    d = s.deltas.loc["step_coherence"]
    v = built["delta_step_coherence"]
    assert d["mean"] == pytest.approx(v.mean()) and d["median"] == pytest.approx(v.median())
    assert d["share_neg"] + d["share_zero"] + d["share_pos"] == pytest.approx(1.0)
    assert s.correlation.loc["factuality", "step_coherence"] == pytest.approx(
        np.corrcoef(built["delta_factuality"], built["delta_step_coherence"])[0, 1]
    )
    g = s.by_generator_pair.iloc[0]
    assert g["generator_gap"] == built["generator_gap"].max()
    md = pairs_stats.render_markdown(s)
    assert "Correctness quadrants" in md and "| CW |" in md


def test_unscored_dimensions_reported_as_empty(built):
    outcome_only = built.assign(**{f"delta_{d}": np.nan for d in ("factuality", "step_coherence")})
    s = pairs_stats.pair_stats(outcome_only)
    assert s.deltas.loc["factuality", "n"] == 0
    assert "factuality" not in s.correlation.index


def test_report_writes_pngs(built, tmp_path):
    _, files = pairs_stats.write_report(built, tmp_path)
    pngs = [f for f in files if f.suffix == ".png"]
    assert len(pngs) == 3
    for f in pngs:
        assert f.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f.stat().st_size > 5000


def test_bad_input(built):
    with pytest.raises(UserError, match="unknown dimension 'charm'"):
        pairs_stats.pair_stats(built, keys=["charm"])
    with pytest.raises(UserError, match="empty"):
        pairs_stats.pair_stats(built.iloc[:0])
