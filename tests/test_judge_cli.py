"""`prefdelta judge gsm8k-check` and `prefdelta judge audit` on user files, through the CLI:
the check's rows join the judgments of `pairs import --gsm8k-solutions`, and a bad row of
a user's file is one line naming file, line and field."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from prefdelta.judge.dimensions import DIMENSIONS
from prefdelta.workspace import Workspace
from test_pairs_cli import _cli, _exit_message


@pytest.fixture(scope="module")
def checked(shared_datasets: Path, tmp_path_factory) -> tuple[Path, pd.DataFrame]:
    """gsm8k-check's rows of all 4,000 published solutions (the real file, --out Parquet)."""
    from prefdelta.cli import main

    out = tmp_path_factory.mktemp("check") / "rows.parquet"
    main(
        ["judge", "gsm8k-check", str(shared_datasets / "gsm8k" / "model_solutions.jsonl"), "--out", str(out)]
    )
    return out, pd.read_parquet(out)


def test_gsm8k_check_rows_join_the_imported_judgments(checked, shared_datasets, tmp_path, capsys):
    _, rows = checked
    ws = str(tmp_path / "ws")
    solutions = str(shared_datasets / "gsm8k" / "model_solutions.jsonl")
    _cli(capsys, "pairs", "import", "-w", ws, "--gsm8k-solutions", solutions, "--judge", "calc")
    w = Workspace(ws)
    traces, judgments = w.read_table("traces"), w.read_table("judgments")
    assert len(rows) == 4000 and rows["trace_id"].is_unique
    joined = rows.merge(
        traces[["trace_id", "problem_id", "generator_id"]], on="trace_id", suffixes=("", "_t")
    )
    assert len(joined) == 4000
    assert (joined["problem_id"] == joined["problem_id_t"]).all()
    assert (joined["generator_id"] == joined["generator_id_t"]).all()
    both = rows.merge(judgments, on=["trace_id", "judge_id"], suffixes=("", "_j"))
    assert len(both) == 4000
    for d in DIMENSIONS:
        # the judgments' 1-5 scale, the share (0-1) beside it
        assert rows[d].between(1, 5).all() and rows[f"{d}_share"].between(0, 1).all()
        assert np.allclose(rows[d], 1 + 4 * rows[f"{d}_share"])
        assert np.allclose(both[d], both[f"{d}_j"])
    assert rows["strategy_coherence"].min() == 1.0 and rows["strategy_coherence"].max() == 5.0


def test_gsm8k_check_summary_and_test_file(checked, shared_datasets, tmp_path, capsys):
    from prefdelta.cli import main

    _, rows = checked
    # a copy of the first 30 solutions with the questions' file elsewhere, under another name
    lines = (shared_datasets / "gsm8k" / "model_solutions.jsonl").read_text().splitlines()[:30]
    solutions = tmp_path / "sol" / "mine.jsonl"
    solutions.parent.mkdir()
    solutions.write_text("\n".join(lines) + "\n")
    questions = tmp_path / "questions.jsonl"
    questions.write_bytes((shared_datasets / "gsm8k" / "test.jsonl").read_bytes())
    out = tmp_path / "rows.parquet"
    main(["judge", "gsm8k-check", str(solutions), "--test-file", str(questions), "--out", str(out)])
    printed = capsys.readouterr().out
    part = pd.read_parquet(out)
    first = rows[rows["problem_id"].isin(part["problem_id"])].reset_index(drop=True)
    pd.testing.assert_frame_equal(part, first)
    assert printed.split()[:2] == ["factuality_share", "strategy_coherence_share"]
    assert "175b_verification" in printed and printed.rstrip().endswith("30")


def test_gsm8k_check_old_form_and_bad_paths_are_one_line(shared_datasets, tmp_path, capsys):
    msg = _exit_message(capsys, "judge", "gsm8k-check", "--data-dir", str(shared_datasets))
    assert f"gsm8k-check {shared_datasets / 'gsm8k' / 'model_solutions.jsonl'}" in msg
    assert "FILE" in _exit_message(capsys, "judge", "gsm8k-check")
    msg = _exit_message(capsys, "judge", "gsm8k-check", str(shared_datasets))
    assert "is a folder" in msg
    solutions = tmp_path / "s.jsonl"
    solutions.write_text((shared_datasets / "gsm8k" / "model_solutions.jsonl").read_text().splitlines()[0])
    out = tmp_path / "rows.parquet"
    msg = _exit_message(capsys, "judge", "gsm8k-check", str(solutions), "--out", str(out))
    assert str(tmp_path / "test.jsonl") in msg and "--test-file" in msg and not out.exists()


# ---- judge audit on user files: every row checked by prefdelta.validate -------------------------


def _audit(tmp_path: Path, *args: str) -> list[str]:
    return ["judge", "audit", "-w", str(tmp_path / "ws"), "--out", str(tmp_path / "audit"), *args]


def test_audit_reads_real_rows_from_parquet_jsonl_and_csv(checked, tmp_path, capsys):
    """The calc judge against the published grades, its rows as Parquet, JSONL and CSV: one audit."""
    from prefdelta.cli import main

    path, rows = checked
    cols = ["trace_id", "judge_id", *DIMENSIONS, "is_correct"]
    rows[cols].to_json(tmp_path / "rows.jsonl", orient="records", lines=True)
    rows[cols].to_csv(tmp_path / "rows.csv", index=False)
    tables = []
    for file in (path, tmp_path / "rows.jsonl", tmp_path / "rows.csv"):
        args = (
            "--judgments",
            str(file),
            "--reference-kind",
            "correctness",
            "--reference-column",
            "is_correct",
        )
        main(_audit(tmp_path, *args))
        tables.append(pd.read_csv(tmp_path / "audit" / "audit.csv"))
    capsys.readouterr()
    assert (tables[0]["n"] == 4000).all()
    # signal-to-noise and strategy coherence rank correct traces higher
    assert (
        tables[0].set_index("dimension").loc[["strategy_coherence", "signal_to_noise"], "spearman"] > 0.1
    ).all()
    for other in tables[1:]:
        pd.testing.assert_frame_equal(tables[0], other)


def _lines(table: pd.DataFrame, path: Path) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in table.to_dict("records")))
    return path


def test_audit_refuses_bad_user_rows(checked, tmp_path, capsys):
    _, rows = checked
    base = rows[["trace_id", "judge_id", *DIMENSIONS, "is_correct"]].head(6).copy()
    base["is_correct"] = base["is_correct"].astype(bool)
    ref = ("--reference-kind", "correctness", "--reference-column", "is_correct")

    off = base.copy()
    off.loc[3, "step_coherence"] = 7.0
    file = _lines(off, tmp_path / "off.jsonl")
    msg = _exit_message(capsys, *_audit(tmp_path, "--judgments", str(file), *ref))
    assert f"{file}: line 4: field 'step_coherence' should be a number from 1 to 5" in msg

    twice = pd.concat([base, base.iloc[[2]]], ignore_index=True)
    file = _lines(twice, tmp_path / "twice.jsonl")
    msg = _exit_message(capsys, *_audit(tmp_path, "--judgments", str(file), *ref))
    assert f"{file}: line 7: field 'repeat': duplicate judgment of (trace, judge, repeat)" in msg
    assert "(first at line 3)" in msg

    file = tmp_path / "labels.csv"
    labels = base[["trace_id", *DIMENSIONS]].astype({d: object for d in DIMENSIONS})
    labels.loc[1, "factuality"] = "nan"
    labels.to_csv(file, index=False)
    judged = _lines(base, tmp_path / "judged.jsonl")
    msg = _exit_message(capsys, *_audit(tmp_path, "--judgments", str(judged), "--reference", str(file)))
    assert f"{file}: line 3: field 'factuality' should be a number from 1 to 5" in msg and "got NaN" in msg

    no_label = _lines(base.drop(columns="is_correct"), tmp_path / "nolabel.jsonl")
    msg = _exit_message(capsys, *_audit(tmp_path, "--judgments", str(no_label), *ref))
    assert f"{no_label}: line 1: missing field 'is_correct'" in msg

    lengths = _lines(
        pd.DataFrame({"trace_id": base["trace_id"], "n_tokens": [10, 20, -1, 5, 6, 7]}), tmp_path / "n.jsonl"
    )
    msg = _exit_message(
        capsys, *_audit(tmp_path, "--judgments", str(judged), *ref, "--lengths", str(lengths))
    )
    assert f"{lengths}: line 3: field 'n_tokens' should be a finite number >= 0" in msg

    pair = {"pair_id": "p1", "repeat": 0, **{f"prefers_a_{d}": 1.0 for d in DIMENSIONS}}
    pairwise = tmp_path / "pairwise.jsonl"
    pairwise.write_text(
        json.dumps({**pair, "order": "ab"}) + "\n" + json.dumps({**pair, "order": "xy"}) + "\n"
    )
    msg = _exit_message(
        capsys, *_audit(tmp_path, "--judgments", str(judged), *ref, "--pairwise", str(pairwise))
    )
    assert f"{pairwise}: line 2: field 'order' should be 'ab' or 'ba'" in msg
    assert not (tmp_path / "audit").exists()


def test_audit_csv_labels_keep_ids_as_text(tmp_path, capsys):
    """Human labels in a CSV: trace ids like '007' stay ids (pandas would read 7), labels are numbers."""
    from prefdelta.cli import main

    ids = [f"{i:03d}" for i in range(1, 9)]
    scores = [1, 2, 2, 3, 4, 4, 5, 5]
    judged = pd.DataFrame({"trace_id": ids, **{d: scores for d in DIMENSIONS}})
    judged.to_parquet(tmp_path / "judged.parquet")
    labels = tmp_path / "labels.csv"
    labels.write_text("trace_id,human\n" + "".join(f"{t},{s}\n" for t, s in zip(ids, scores, strict=True)))
    main(_audit(tmp_path, "--judgments", str(tmp_path / "judged.parquet"), "--reference", str(labels),
                "--reference-column", "human"))  # fmt: skip
    capsys.readouterr()
    table = pd.read_csv(tmp_path / "audit" / "audit.csv")
    assert (table["n"] == 8).all() and np.allclose(table["spearman"], 1.0)
    assert np.allclose(table["mean_abs_error"], 0.0)
