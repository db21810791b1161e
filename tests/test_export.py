"""Exports: record formats, containers, atomic writes, and bad input that writes nothing."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from prefdelta.errors import UserError
from prefdelta.pairs import build as pairs
from prefdelta.pairs import export
from prefdelta.select import strategies as select
from test_pairs import synth


@pytest.fixture(scope="module")
def tables():
    traces, judgments, gens = synth(n_problems=12, gens=("a", "b"), samples=2)
    problems = pd.DataFrame({"problem_id": sorted(traces["problem_id"].unique())}).assign(
        prompt=lambda d: "Q: " + d["problem_id"] + "\n"
    )
    built = pairs.cross_generator_pairs(traces, pairs.trace_scores(judgments), gens, per_problem=4)
    sels = select.selections_for(built, select.SelectConfig(key="aggregate", fraction=0.5))
    return built, traces, problems, sels


def test_dpo_records_plain_and_conversational(tables):
    built, traces, problems, sels = tables
    sid = sels.loc[sels["strategy"] == "top", "selection_id"].iloc[0]
    frame = export.training_frame(export.selected_pairs(built, sels, sid), traces, problems)
    text = traces.set_index("trace_id")["text"]
    plain = export.dpo_records(frame)
    assert list(plain.columns) == ["prompt", "chosen", "rejected"]
    assert len(plain) == (sels["selection_id"] == sid).sum()
    first = frame.iloc[0]
    assert plain.iloc[0].to_dict() == {
        "prompt": f"Q: {first['problem_id']}\n",
        "chosen": text[first["chosen_trace_id"]],
        "rejected": text[first["rejected_trace_id"]],
    }
    # selection rank order is kept: the first record is the top pair
    assert first["pair_id"] == sels.loc[sels["selection_id"] == sid, "pair_id"].iloc[0]
    conv = export.dpo_records(frame, conversational=True)
    assert conv.iloc[0]["prompt"] == [{"role": "user", "content": f"Q: {first['problem_id']}"}]
    assert conv.iloc[0]["chosen"] == [{"role": "assistant", "content": text[first["chosen_trace_id"]]}]


def test_kto_records_unpaired_unique_and_conflicts_left_out(tables):
    built, traces, problems, _ = tables
    frame = export.training_frame(built, traces, problems)
    kto, dropped = export.kto_records(frame)
    both = set(frame["chosen_trace_id"]) & set(frame["rejected_trace_id"])
    assert dropped == len(both)
    n_pos = len(set(frame["chosen_trace_id"]) - both)
    n_neg = len(set(frame["rejected_trace_id"]) - both)
    assert kto["label"].sum() == n_pos and (~kto["label"]).sum() == n_neg
    assert list(kto.columns) == ["prompt", "completion", "label"]


@pytest.mark.parametrize("container", ["jsonl", "parquet", "dataset"])
def test_containers_round_trip(tables, tmp_path, container):
    from datasets import load_from_disk

    built, traces, problems, _ = tables
    out = tmp_path / f"dpo.{container}"
    res = export.export(built, traces, problems, out, fmt="dpo", container=container)
    assert res.records == len(built) == res.pairs
    if container == "jsonl":
        rows = [json.loads(line) for line in out.read_text().splitlines()]
    elif container == "parquet":
        rows = pd.read_parquet(out).to_dict("records")
    else:
        rows = load_from_disk(str(out)).to_list()
    assert len(rows) == len(built) and set(rows[0]) == {"prompt", "chosen", "rejected"}
    with pytest.raises(UserError, match="exists"):
        export.export(built, traces, problems, out, fmt="dpo", container=container)
    export.export(built, traces, problems, out, fmt="kto", container=container, overwrite=True)
    assert not list(tmp_path.glob(".*tmp*"))


def test_pairs_format_keeps_deltas(tables, tmp_path):
    built, traces, problems, _ = tables
    out = tmp_path / "pairs.parquet"
    export.export(built, traces, problems, out, fmt="pairs", container="parquet")
    df = pd.read_parquet(out)
    assert {"pair_id", "delta_aggregate", "generator_gap", "quadrant", "prompt", "chosen"} <= set(df.columns)


def test_bad_input_writes_nothing(tables, tmp_path):
    built, traces, problems, sels = tables
    out = tmp_path / "x.jsonl"
    with pytest.raises(UserError, match="no selection 'nope'"):
        export.export(built, traces, problems, out, selections=sels, selection_id="nope")
    with pytest.raises(UserError, match="not in the traces table"):
        export.export(built, traces[traces["generator_id"] == "a"], problems, out)
    with pytest.raises(UserError, match="not in the problems table"):
        export.export(built, traces, problems.iloc[1:], out)
    broken = sels.copy()
    broken.loc[broken.index[0], "pair_id"] = "missing"
    with pytest.raises(UserError, match="references pair 'missing'"):
        export.export(
            built, traces, problems, out, selections=broken, selection_id=broken["selection_id"].iloc[0]
        )
    with pytest.raises(UserError, match="empty"):
        export.export(built.iloc[:0], traces, problems, out)
    with pytest.raises(UserError, match="unknown export format"):
        export.export(built, traces, problems, out, fmt="orpo")
    with pytest.raises(UserError, match="unknown container"):
        export.export(built, traces, problems, out, container="csv")
    assert not any(tmp_path.iterdir())
