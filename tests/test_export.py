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


def _with_prompts(traces: pd.DataFrame, problems: pd.DataFrame) -> pd.DataFrame:
    """Traces as the generate stage writes them: 'a' sampled through a chat template, 'b' plain."""
    prompt = problems.set_index("problem_id")["prompt"]
    out = traces.copy()
    q = prompt.reindex(out["problem_id"]).to_numpy()
    chat = (out["generator_id"] == "a").to_numpy()
    out["prompt_text"] = [
        f"<|user|>Solve: {p}<|assistant|>" if c else f"Solve step by step.\n{p}"
        for p, c in zip(q, chat, strict=True)
    ]
    out["prompt_messages"] = [
        json.dumps([{"role": "system", "content": "Be brief."}, {"role": "user", "content": f"Solve: {p}"}])
        if c
        else None
        for p, c in zip(q, chat, strict=True)
    ]
    return out


def test_exports_carry_the_prompts_the_traces_were_sampled_from(tables):
    built, traces, problems, _ = tables
    stored = _with_prompts(traces, problems).set_index("trace_id")
    frame = export.training_frame(built, stored.reset_index(), problems)
    plain = export.dpo_records(frame)
    conv = export.dpo_records(frame, conversational=True)
    for i, pair in frame.reset_index(drop=True).iterrows():
        chosen = stored.loc[pair["chosen_trace_id"]]
        assert plain.loc[i, "prompt"] == chosen["prompt_text"]  # the chosen trace's prompt, as sent
        if isinstance(chosen["prompt_messages"], str):
            assert conv.loc[i, "prompt"] == json.loads(chosen["prompt_messages"])
        else:
            assert conv.loc[i, "prompt"] == [{"role": "user", "content": chosen["prompt_text"].rstrip("\n")}]
    kto, _ = export.kto_records(frame)
    by_text = {(r.text, r.prompt_text) for r in stored.itertuples()}
    assert all((row.completion, row.prompt) in by_text for row in kto.itertuples())  # each its own prompt
    notes = export.prompt_notes(frame, "dpo")
    differ = int((frame["chosen_generator"] != frame["rejected_generator"]).sum())
    assert differ and any(
        n.startswith(f"{differ} pairs' traces were sampled from different prompts") for n in notes
    )
    conv_notes = export.prompt_notes(frame, "dpo-conversational")
    plain_sampled = len(
        {t for t in frame[["chosen_trace_id", "rejected_trace_id"]].stack() if t.startswith("b-")}
    )
    assert any(n.startswith(f"{plain_sampled} traces were sampled from a plain prompt") for n in conv_notes)


def test_kto_rows_alternate_desirable_and_undesirable(tables):
    built, traces, problems, _ = tables
    kto, _ = export.kto_records(export.training_frame(built, traces, problems))
    labels = kto["label"].tolist()
    n = min(sum(labels), len(labels) - sum(labels))
    assert labels[: 2 * n] == [True, False] * n
    assert len(set(labels[2 * n :])) <= 1  # the longer side's rest at the end


def test_old_traces_without_prompt_columns_fall_back_to_the_rendered_template(tables, tmp_path):
    from prefdelta.generate.prompts import load_template

    built, traces, problems, _ = tables
    old = traces.assign(template="gsm8k", prompt_style="completion")
    res = export.export(built, old, problems, tmp_path / "dpo.jsonl")
    rows = [json.loads(line) for line in (tmp_path / "dpo.jsonl").read_text().splitlines()]
    first = built.iloc[0]
    q = problems.set_index("problem_id").loc[first["problem_id"], "prompt"]
    assert rows[0]["prompt"] == load_template("gsm8k").text(q) != q
    assert any("no stored prompt" in n for n in res.notes)
    assert "no stored prompt" in (tmp_path / "dpo.jsonl.README.md").read_text()


def _card_metadata(text: str) -> dict:
    import yaml

    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])


def test_dataset_card_states_source_generators_judge_selection_counts(tables, tmp_path):
    built, traces, problems, sels = tables
    sid = sels.loc[sels["strategy"] == "top", "selection_id"].iloc[0]
    probs = problems.assign(source="gsm8k")
    models = traces.assign(model=traces["generator_id"].map({"a": "org/model-a", "b": "org/model-b"}))
    out = tmp_path / "kto_ds"
    res = export.export(
        built,
        models,
        probs,
        out,
        fmt="kto",
        container="dataset",
        selections=sels,
        selection_id=sid,
        judges=("calc",),
    )
    assert res.card == out / "README.md"
    meta = _card_metadata(res.card.read_text())
    assert meta["license"] == "mit"  # GSM8K's licence
    info = meta["prefdelta"]
    assert info["sources"] == ["gsm8k"] and info["judges"] == ["calc"]
    assert info["generators"] == {"a": "org/model-a", "b": "org/model-b"}
    assert info["selection"]["selection_id"] == sid and info["selection"]["strategy"] == "top"
    n_sel = int((sels["selection_id"] == sid).sum())
    assert info["counts"]["pairs"] == n_sel and info["counts"]["records"] == res.records
    assert info["counts"]["desirable"] + info["counts"]["undesirable"] == res.records
    from datasets import load_from_disk

    assert len(load_from_disk(str(out))) == res.records  # the card does not disturb the dataset
    # a user's own problems: licence unknown, said so
    res = export.export(
        built, traces, problems.assign(source="mine"), tmp_path / "x.parquet", container="parquet"
    )
    assert _card_metadata((tmp_path / "x.parquet.README.md").read_text())["license"] == "unknown"


def test_push_to_hub_uploads_records_and_card_in_one_commit(tables, monkeypatch):
    import io

    import huggingface_hub

    from prefdelta.pairs import card as card_mod

    calls: list[tuple[str, tuple, dict]] = []

    class FakeApi:
        def create_repo(self, *args, **kwargs):
            calls.append(("create_repo", args, kwargs))

        def create_commit(self, *args, **kwargs):
            calls.append(("create_commit", args, kwargs))

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    built, traces, problems, _ = tables
    prepared = export.prepare(built, traces, problems.assign(source="gsm8k"), fmt="dpo")
    card = card_mod.card_text(prepared.info, hub=True)
    card_mod.push_to_hub(prepared.records, card, "me/pairs", private=True)
    (name, args, kwargs), (name2, args2, kwargs2) = calls
    assert name == "create_repo" and args == ("me/pairs",)
    assert kwargs == {"repo_type": "dataset", "private": True, "exist_ok": True}
    assert name2 == "create_commit" and args2 == ("me/pairs",) and kwargs2["repo_type"] == "dataset"
    ops = {op.path_in_repo: op for op in kwargs2["operations"]}
    assert set(ops) == {card_mod.HUB_DATA_FILE, "README.md"}
    uploaded = pd.read_parquet(io.BytesIO(ops[card_mod.HUB_DATA_FILE].path_or_fileobj))
    assert uploaded.equals(prepared.records)
    meta = _card_metadata(ops["README.md"].path_or_fileobj.decode())
    assert meta["configs"][0]["data_files"][0]["path"] == card_mod.HUB_DATA_FILE
    assert meta["license"] == "mit" and meta["prefdelta"]["counts"]["records"] == len(prepared.records)
