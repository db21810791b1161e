"""Problem sources: real files from ../shared/datasets, and clear errors on bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from prefdelta.errors import UserError
from prefdelta.sources import gsm8k
from prefdelta.sources.base import PROBLEM_COLUMNS


def test_gsm8k_test_and_train_counts(shared_datasets: Path) -> None:
    test = gsm8k.load("test", shared_datasets)
    assert len(test) == 1319
    assert list(test.columns) == list(PROBLEM_COLUMNS)
    assert test["problem_id"].is_unique
    first = test.iloc[0]
    assert first["problem_id"] == "gsm8k-test-00000"
    assert first["reference_answer"] == "18"
    assert "<<16-3-4=9>>" in first["reference_solution"]
    assert len(gsm8k.load("train", shared_datasets)) == 7473


def test_gsm8k_answers_drop_thousands_separators() -> None:
    assert gsm8k.final_answer("so 1,000+5=<<1000+5=1005>>1,005\n#### 1,005") == "1005"
    assert gsm8k.final_answer("no final line") is None


def test_model_solutions(shared_datasets: Path) -> None:
    problems, traces = gsm8k.load_model_solutions(shared_datasets)
    assert len(problems) == 1000
    assert len(traces) == 4000
    assert set(traces["generator_id"]) == set(gsm8k.MODEL_SOLUTION_GENERATORS)
    assert traces["trace_id"].is_unique
    assert set(traces["problem_id"]) == set(problems["problem_id"])
    # the ids are those of the plain GSM8K test loader, so tables join
    test = gsm8k.load("test", shared_datasets).set_index("problem_id")
    assert (test.loc[problems["problem_id"], "prompt"].to_numpy() == problems["prompt"].to_numpy()).all()
    # published accuracies on the first 1000: the 175B verifier beats the 6B fine-tuned model
    acc = traces.groupby("generator_id")["is_correct"].mean()
    assert acc["6b_finetuning"] == pytest.approx(0.219)
    assert acc["175b_verification"] == pytest.approx(0.574)
    assert (traces["finish_reason"] == "stop").all()
    assert (traces["n_tokens"] > 0).all()


def _mirror(tmp_path: Path, shared: Path, n: int = 3) -> Path:
    root = tmp_path / "data"
    (root / "gsm8k").mkdir(parents=True)
    for name in ("test.jsonl", "model_solutions.jsonl"):
        lines = (shared / "gsm8k" / name).read_text().splitlines()[:n]
        (root / "gsm8k" / name).write_text("\n".join(lines) + "\n")
    return root


def test_gsm8k_errors_name_file_line_column(tmp_path: Path, shared_datasets: Path) -> None:
    root = _mirror(tmp_path, shared_datasets)
    path = root / "gsm8k" / "test.jsonl"
    lines = path.read_text().splitlines()
    path.write_text("\n".join([lines[0], lines[1][:40], lines[2]]) + "\n")
    with pytest.raises(UserError, match=r"test\.jsonl: line 2, column \d+: not valid JSON"):
        gsm8k.load("test", root)
    record = json.loads(lines[1])
    del record["answer"]
    path.write_text("\n".join([lines[0], json.dumps(record)]) + "\n")
    with pytest.raises(UserError, match=r"test\.jsonl: line 2: missing column 'answer'"):
        gsm8k.load("test", root)
    path.unlink()
    with pytest.raises(UserError, match=r"gsm8k/test\.jsonl not found"):
        gsm8k.load("test", root)
    with pytest.raises(UserError, match="splits train, test"):
        gsm8k.load("dev", root)


def test_model_solutions_bad_generator_entry(tmp_path: Path, shared_datasets: Path) -> None:
    root = _mirror(tmp_path, shared_datasets)
    path = root / "gsm8k" / "model_solutions.jsonl"
    lines = path.read_text().splitlines()
    record = json.loads(lines[2])
    del record["175b_verification"]
    path.write_text("\n".join([*lines[:2], json.dumps(record)]) + "\n")
    with pytest.raises(
        UserError, match=r"model_solutions\.jsonl: line 3: missing column '175b_verification'"
    ):
        gsm8k.load_model_solutions(root)
