"""`prefdelta pairs` / `prefdelta select` through the CLI: real GSM8K model solutions, the
study stages on a workspace, and bad input that exits with one clear line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import run_stage, spec_from, template_data
from prefdelta.cli import main
from prefdelta.hashing import stable_hash
from prefdelta.pairs import build as pairs
from prefdelta.workspace import Workspace
from test_pairs import synth

SIX_B = ("6b_finetuning", "6b_verification")
BIG = ("175b_finetuning", "175b_verification")


def _cli(capsys, *args: str) -> str:
    main(list(args))
    return capsys.readouterr().out


@pytest.mark.integration
def test_gsm8k_175b_vs_6b_pairs_stats_select_export(shared_datasets, tmp_path, capsys):
    ws = str(tmp_path / "ws")
    solutions = str(shared_datasets / "gsm8k" / "model_solutions.jsonl")
    out = _cli(capsys, "pairs", "import", "-w", ws, "--gsm8k-solutions", solutions, "--judge", "calc")
    assert "imported 4000 traces of 4 generators on 1000 problems" in out
    _cli(
        capsys,
        "pairs",
        "-w",
        ws,
        *[f"--chosen={g}" for g in BIG],
        *[f"--rejected={g}" for g in SIX_B],
    )
    w = Workspace(ws)
    p = w.read_table("pairs")
    assert set(p["chosen_generator"]) <= set(BIG) and set(p["rejected_generator"]) <= set(SIX_B)
    assert (p["generator_gap"] > 0).all() and (p["param_ratio"] == 175 / 6).all()
    # one pair per (generator pair, problem); 175b_finetuning is less accurate than
    # 6b_verification on these problems, so that ordered pair is not built
    assert p.groupby(["chosen_generator", "rejected_generator", "problem_id"]).size().max() == 1
    assert ("175b_finetuning", "6b_verification") not in set(
        zip(p["chosen_generator"], p["rejected_generator"], strict=True)
    )
    assert p["delta_step_coherence"].notna().all()
    text = w.read_table("traces").set_index("trace_id")["text"]
    assert (text[p["chosen_trace_id"]].to_numpy() != text[p["rejected_trace_id"]].to_numpy()).all()

    stats_dir = tmp_path / "stats"
    out = _cli(capsys, "pairs", "stats", "-w", ws, "--out", str(stats_dir))
    assert f"{len(p)} pairs on {p['problem_id'].nunique()} problems" in out
    for q in ("CC", "CW", "WC", "WW"):
        assert f"| {q} | {(p['quadrant'] == q).sum()} |" in out
    assert f"| step_coherence | {len(p)} | {p['delta_step_coherence'].mean():+.3f} |" in out
    summary = json.loads((stats_dir / "pairs_stats.json").read_text())
    assert summary["counts"]["pairs"] == len(p)
    assert (stats_dir / "delta_histograms.png").stat().st_size > 5000

    _cli(capsys, "select", "-w", ws, "--key", "step_coherence", "--fraction", "0.3", "--seed", "1")
    sels = w.read_table("selections")
    assert sels.groupby("strategy").size().to_dict() == {
        "top": -(-3 * len(p) // 10),
        "random": -(-3 * len(p) // 10),
        "all": len(p),
    }
    top_id = sels.loc[sels["strategy"] == "top", "selection_id"].iloc[0]
    dpo = tmp_path / "dpo.jsonl"
    out = _cli(
        capsys, "pairs", "export", "-w", ws, "--selection", top_id, "--format", "dpo", "--out", str(dpo)
    )
    rows = [json.loads(line) for line in dpo.read_text().splitlines()]
    assert len(rows) == (sels["selection_id"] == top_id).sum()
    assert rows[0]["prompt"] in set(w.read_table("problems")["prompt"])
    _cli(
        capsys,
        "pairs",
        "export",
        "-w",
        ws,
        "--format",
        "kto",
        "--to",
        "dataset",
        "--out",
        str(tmp_path / "kto"),
    )
    assert (tmp_path / "kto" / "dataset_info.json").is_file()


@pytest.mark.integration
def test_gsm8k_scored_by_correctness_only(shared_datasets, tmp_path, capsys):
    ws = str(tmp_path / "ws")
    solutions = str(shared_datasets / "gsm8k" / "model_solutions.jsonl")
    _cli(capsys, "pairs", "import", "-w", ws, "--gsm8k-solutions", solutions, "--judge", "outcome")
    _cli(capsys, "pairs", "-w", ws, "--chosen=175b_verification", "--rejected=6b_finetuning")
    p = Workspace(ws).read_table("pairs")
    assert len(p) == 1000 and p["delta_step_coherence"].isna().all()
    assert np.allclose(p["delta_outcome"].mean(), p["generator_gap"].iloc[0])
    out = _cli(capsys, "pairs", "stats", "-w", ws, "--out", str(tmp_path / "s"))
    assert "| step_coherence | 0 | – |" in out


def _gsm8k_copies(shared: Path, folder: Path, n: int, solutions_name: str) -> tuple[Path, Path]:
    """The first ``n`` published solutions and the whole test file, under names of the user's choosing."""
    folder.mkdir(parents=True)
    lines = (shared / "gsm8k" / "model_solutions.jsonl").read_text().splitlines()[:n]
    solutions = folder / solutions_name
    solutions.write_text("\n".join(lines) + "\n")
    test = folder / "test.jsonl"
    shutil.copyfile(shared / "gsm8k" / "test.jsonl", test)
    return solutions, test


def test_gsm8k_solutions_are_files_anywhere(shared_datasets, tmp_path, capsys):
    """--gsm8k-solutions names a file; --test-file names the questions' file wherever it lies."""
    solutions, test = _gsm8k_copies(shared_datasets, tmp_path / "a", 12, "my_solutions.jsonl")
    questions = tmp_path / "elsewhere" / "gsm8k_questions.jsonl"
    questions.parent.mkdir()
    test.rename(questions)
    ws = str(tmp_path / "ws")
    args = ("pairs", "import", "-w", ws, "--gsm8k-solutions", str(solutions), "--judge", "calc")
    out = _cli(capsys, *args, "--test-file", str(questions))
    assert "imported 48 traces of 4 generators on 12 problems" in out
    w = Workspace(ws)
    traces = w.read_table("traces")
    # the ids are those of the GSM8K test loader and of the generate stage's formula
    assert list(w.read_table("problems")["problem_id"]) == [f"gsm8k-test-{i:05d}" for i in range(12)]
    want = {
        stable_hash(g, p, 0, 0) for g, p in zip(traces["generator_id"], traces["problem_id"], strict=True)
    }
    assert set(traces["trace_id"]) == want
    assert set(w.read_table("judgments")["trace_id"]) == want


def test_gsm8k_test_file_defaults_to_the_one_beside_the_solutions(shared_datasets, tmp_path, capsys):
    solutions, _ = _gsm8k_copies(shared_datasets, tmp_path / "b", 5, "solutions.jsonl")
    ws = str(tmp_path / "ws")
    out = _cli(capsys, "pairs", "import", "-w", ws, "--gsm8k-solutions", str(solutions), "--judge", "outcome")
    assert "imported 20 traces of 4 generators on 5 problems" in out


def test_gsm8k_solutions_bad_paths_are_one_line(shared_datasets, tmp_path, capsys):
    ws = str(tmp_path / "ws")
    # the old form, a data folder, names the new one
    msg = _exit_message(capsys, "pairs", "import", "-w", ws, "--gsm8k-solutions", str(shared_datasets))
    assert "is a folder" in msg and str(shared_datasets / "gsm8k" / "model_solutions.jsonl") in msg
    solutions, test = _gsm8k_copies(shared_datasets, tmp_path / "c", 3, "s.jsonl")
    test.unlink()
    msg = _exit_message(capsys, "pairs", "import", "-w", ws, "--gsm8k-solutions", str(solutions))
    assert str(test) in msg and "--test-file" in msg
    missing = tmp_path / "nope.jsonl"
    msg = _exit_message(
        capsys, "pairs", "import", "-w", ws, "--gsm8k-solutions", str(solutions), "--test-file", str(missing)
    )
    assert f"GSM8K test questions file {missing} not found" in msg
    # a question of the solutions that the given test file lacks: named by file and line
    other = tmp_path / "train.jsonl"
    shutil.copyfile(shared_datasets / "gsm8k" / "train.jsonl", other)
    msg = _exit_message(
        capsys, "pairs", "import", "-w", ws, "--gsm8k-solutions", str(solutions), "--test-file", str(other)
    )
    assert f"{solutions}: line 1: column 'question' matches no question of {other}" in msg
    msg = _exit_message(
        capsys, "pairs", "import", "-w", ws, "--traces", str(solutions), "--test-file", str(other)
    )
    assert "--test-file goes with --gsm8k-solutions" in msg
    assert not Workspace(ws).has_table("traces")


def test_user_files_import_and_build_cache(tmp_path, capsys):
    traces, judgments, _ = synth(n_problems=10, gens=("1b_x", "7b_y"), samples=2)
    judgments = judgments.drop_duplicates("trace_id")
    traces.to_parquet(tmp_path / "traces.parquet")
    judgments.to_json(tmp_path / "judgments.jsonl", orient="records", lines=True)
    ws = str(tmp_path / "ws")
    _cli(
        capsys,
        "pairs",
        "import",
        "-w",
        ws,
        "--traces",
        str(tmp_path / "traces.parquet"),
        "--judgments",
        str(tmp_path / "judgments.jsonl"),
    )
    g = Workspace(ws).read_table("generators").set_index("generator_id")
    assert g.loc["7b_y", "params"] == 7e9 and g.loc["1b_x", "params"] == 1e9
    _cli(capsys, "pairs", "-w", ws, "--strategy", "correctness", "--per-problem", "2")
    built = Workspace(ws).read_table("pairs")
    assert (built["quadrant"] == "CW").all()
    # re-running with the same options is a cache hit; new options rebuild
    done = Workspace(ws).stage_record("pairs")["finished_at"]
    _cli(capsys, "pairs", "-w", ws, "--strategy", "correctness", "--per-problem", "2")
    assert Workspace(ws).stage_record("pairs")["finished_at"] == done
    _cli(capsys, "pairs", "-w", ws, "--strategy", "correctness", "--per-problem", "3")
    assert Workspace(ws).stage_record("pairs")["finished_at"] > done


def _exit_message(capsys, *args: str) -> str:
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1
    return err


def test_bad_input_is_one_line_exit_2(tmp_path, capsys):
    ws = str(tmp_path / "ws")
    assert "table 'pairs' not found" in _exit_message(capsys, "pairs", "stats", "-w", ws)
    bad = tmp_path / "traces.jsonl"
    bad.write_text('{"trace_id": "t1", "problem_id": "p", "generator_id": "g", "text": "x"}\n{"trace_id": \n')
    msg = _exit_message(capsys, "pairs", "import", "-w", ws, "--traces", str(bad), "--judgments", str(bad))
    assert "line 2" in msg
    traces, judgments, gens = synth(n_problems=5, gens=("a", "b"))
    w = Workspace(ws)
    w.write_table("traces", traces)
    w.write_table("judgments", judgments.iloc[1:])
    w.write_table("generators", gens)
    assert "has no judgment" in _exit_message(capsys, "pairs", "-w", ws)
    w.write_table("judgments", judgments)
    assert "quadrants" in _exit_message(capsys, "pairs", "-w", ws, "--quadrant", "XX")
    _cli(capsys, "pairs", "-w", ws)
    assert "unknown key 'charm'" in _exit_message(capsys, "select", "-w", ws, "--key", "charm")
    out = tmp_path / "never.jsonl"
    msg = _exit_message(capsys, "pairs", "export", "-w", ws, "--selection", "nope", "--out", str(out))
    assert "selections" in msg and not out.exists()


def test_study_stages_write_the_selections_train_expects(tmp_path):
    data = template_data("arith-world")
    data["pairs"]["within"] = []
    data["select"]["by_generator_pair"] = True
    cfg = spec_from(data)
    traces, judgments, gens = synth(
        n_problems=30, gens=("llama-h64-s1500", "llama-h64-s600", "gpt2-h64-s600")
    )
    ws = Workspace(tmp_path / "ws")
    ws.write_table("traces", traces)
    ws.write_table("judgments", judgments)
    ws.write_table("generators", gens)
    assert not run_stage(ws, cfg, "pairs").skipped
    assert run_stage(ws, cfg, "pairs").skipped
    p = ws.read_table("pairs")
    expected = pairs.cross_generator_pairs(traces, pairs.trace_scores(judgments), gens)
    assert sorted(p["pair_id"]) == sorted(expected["pair_id"])
    for col in (
        "pair_id",
        "chosen_generator",
        "rejected_generator",
        "generator_gap",
        "delta_aggregate",
        "chosen_correct",
        "rejected_correct",
        "delta_step_coherence",
    ):
        assert col in p.columns
    run_stage(ws, cfg, "select")
    sels = ws.read_table("selections")
    sizes = sels.groupby("strategy").size()
    gen = sizes[sizes.index.str.startswith("gen:")]
    assert sizes.drop(gen.index).to_dict() == {
        "top": -(-3 * len(p) // 10),
        "random": -(-3 * len(p) // 10),
        "all": len(p),
    }
    assert len(gen) == 3 and gen.nunique() == 1  # the demo's generator-level selections, equal sizes
    assert set(sels.groupby("strategy")["selection_id"].nunique()) == {1}
    assert set(sels["pair_id"]) <= set(p["pair_id"])


def test_export_writes_a_card_and_pushes_only_when_asked(tmp_path, capsys, monkeypatch):
    import huggingface_hub

    calls: list[tuple[str, tuple, dict]] = []

    class FakeApi:
        def create_repo(self, *args, **kwargs):
            calls.append(("create_repo", args, kwargs))

        def create_commit(self, *args, **kwargs):
            calls.append(("create_commit", args, kwargs))

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    traces, judgments, gens = synth(n_problems=10, gens=("a", "b"), samples=1)
    ws = str(tmp_path / "ws")
    w = Workspace(ws)
    w.write_table("traces", traces)
    w.write_table("judgments", judgments.assign(judge_id="calc"))
    w.write_table("generators", gens)
    problems = traces[["problem_id"]].drop_duplicates().assign(prompt="Q?", source="svamp")
    w.write_table("problems", problems)
    _cli(capsys, "pairs", "-w", ws)
    out = tmp_path / "dpo.jsonl"
    printed = _cli(capsys, "pairs", "export", "-w", ws, "-o", str(out))
    assert calls == []  # nothing leaves the machine unless asked
    card = tmp_path / "dpo.jsonl.README.md"
    assert f"(card: {card})" in printed and "note: " in printed and "no stored prompt" in printed
    assert "license: mit" in card.read_text() and "- calc" in card.read_text()
    _cli(
        capsys,
        "pairs",
        "export",
        "-w",
        ws,
        "-o",
        str(out),
        "--overwrite",
        "--push-to-hub",
        "me/x",
        "--public",
    )
    assert [c[0] for c in calls] == ["create_repo", "create_commit"]
    assert calls[0][2]["private"] is False and calls[1][1] == ("me/x",)
    readme = next(op for op in calls[1][2]["operations"] if op.path_in_repo == "README.md")
    assert b"config_name: default" in readme.path_or_fileobj
