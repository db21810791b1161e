"""Every built-in benchmark loader on the real files, and the generic column-mapped loader."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pandas as pd
import pytest

from prefdelta.errors import UserError
from prefdelta.sources.base import PROBLEM_COLUMNS
from prefdelta.sources.custom import ColumnMap, load_custom
from prefdelta.sources.registry import SPLITS, load_source

EXPECTED = {
    "gsm8k": 1319,
    "math500": 500,
    "minerva_math": 272,
    "mmlu_stem": 3018,
    "aime24": 30,
    "amc23": 40,
    "svamp": 1000,
    "humaneval": 164,
}


@pytest.mark.parametrize("source", sorted(EXPECTED))
def test_row_counts_and_schema(source: str, shared_datasets: Path) -> None:
    df = load_source(source, "test", shared_datasets)
    assert len(df) == EXPECTED[source]
    assert list(df.columns) == list(PROBLEM_COLUMNS)
    assert df["problem_id"].is_unique
    assert (df["source"] == source).all() and (df["split"] == "test").all()
    assert df["prompt"].str.len().min() > 0
    for meta in df["meta"]:
        assert isinstance(json.loads(meta), dict)
    if source != "humaneval":
        assert df["reference_answer"].str.len().min() > 0


def test_answers_as_published(shared_datasets: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PREFDELTA_DATA_DIR", str(shared_datasets))  # no --data-dir: the env var
    math = load_source("math500").iloc[0]
    assert math["reference_answer"] == "\\left( 3, \\frac{\\pi}{2} \\right)"
    assert json.loads(math["meta"])["level"] == 2
    assert load_source("minerva_math").iloc[0]["reference_answer"] == "1.6"  # from \boxed{1.6}
    assert load_source("amc23").iloc[0]["reference_answer"] == "27"  # published as 27.0
    assert load_source("aime24").iloc[0]["reference_answer"] == "204"
    mmlu = load_source("mmlu_stem").iloc[0]
    assert mmlu["reference_answer"] == "C" and "\nC. reduce the carrying capacity" in mmlu["prompt"]
    svamp = load_source("svamp").iloc[0]
    assert svamp["reference_answer"] == "145" and svamp["prompt"].endswith(
        "How big is each group of bananas?"
    )
    he = load_source("humaneval").iloc[0]
    meta = json.loads(he["meta"])
    assert meta["task_id"] == "HumanEval/0" and meta["entry_point"] == "has_close_elements"
    assert "def check(candidate)" in meta["test"] and he["prompt"].startswith("from typing import List")


def test_unknown_source_and_split() -> None:
    with pytest.raises(UserError, match="unknown problem source 'gsm9k'"):
        load_source("gsm9k")
    with pytest.raises(UserError, match="split"):
        load_source("math500", "train")
    assert set(SPLITS) == set(EXPECTED)


def test_missing_data_dir_and_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(UserError, match=r"data directory .* not found"):
        load_source("math500", data_dir=tmp_path / "nope")
    with pytest.raises(UserError, match=r"math500/test\.jsonl not found"):
        load_source("math500", data_dir=tmp_path)
    monkeypatch.delenv("PREFDELTA_DATA_DIR", raising=False)
    with pytest.raises(UserError, match="--data-dir"):
        load_source("amc23")  # no hub copy: a local directory is required


def test_errors_in_gzip_and_mmlu_answers(tmp_path: Path) -> None:
    (tmp_path / "humaneval").mkdir()
    with gzip.open(tmp_path / "humaneval" / "HumanEval.jsonl.gz", "wt") as f:
        f.write(json.dumps({"task_id": "t", "prompt": "def f():\n", "canonical_solution": "  pass\n"}) + "\n")
    with pytest.raises(UserError, match=r"HumanEval\.jsonl\.gz: line 1: missing column 'entry_point'"):
        load_source("humaneval", data_dir=tmp_path)
    (tmp_path / "mmlu_stem").mkdir()
    bad = {"question": "q", "type": "t", "choices": ["a", "b"], "answer": 3}
    (tmp_path / "mmlu_stem" / "test.jsonl").write_text("\n" + json.dumps(bad) + "\n")
    with pytest.raises(UserError, match=r"test\.jsonl: line 2: column 'answer' 3 is not an index"):
        load_source("mmlu_stem", data_dir=tmp_path)
    (tmp_path / "mmlu_stem" / "test.jsonl").write_text(json.dumps({**bad, "answer": "B"}) + "\n")
    with pytest.raises(UserError, match="line 1: column 'answer' should be int, got str"):
        load_source("mmlu_stem", data_dir=tmp_path)


ROWS = [
    {"q": "What is 2+3?", "sol": "2+3=<<2+3=5>>5\n#### 5", "uid": "a1", "topic": "add"},
    {"q": "What is 4*5?", "sol": "4*5=<<4*5=20>>20\n#### 20", "uid": "a2", "topic": "mul"},
]
MAP = ColumnMap(prompt="q", reference_answer="sol", reference_solution="sol", id="uid", meta=["topic"])


def test_custom_jsonl_parquet_and_dataset_folder(tmp_path: Path) -> None:
    import datasets

    jsonl = tmp_path / "mine.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    parquet = tmp_path / "mine.parquet"
    pd.DataFrame(ROWS).to_parquet(parquet)
    folder = tmp_path / "mine_ds"
    datasets.Dataset.from_list(ROWS).save_to_disk(str(folder))
    frames = [load_custom(p, MAP, source="mine", answer_format="gsm8k") for p in (jsonl, parquet, folder)]
    for df in frames:
        assert list(df["reference_answer"]) == ["5", "20"]
        assert list(df["problem_id"]) == ["mine-test-00000", "mine-test-00001"]
        assert json.loads(df.iloc[1]["meta"]) == {"topic": "mul", "native_id": "a2"}
    pd.testing.assert_frame_equal(frames[0], frames[1])
    pd.testing.assert_frame_equal(frames[0], frames[2])


def test_custom_errors_name_file_row_and_column(tmp_path: Path) -> None:
    parquet = tmp_path / "mine.parquet"
    pd.DataFrame([ROWS[0], {**ROWS[1], "q": None}]).to_parquet(parquet)
    with pytest.raises(UserError, match=r"mine\.parquet: row 2: missing column 'q'"):
        load_custom(parquet, MAP)
    jsonl = tmp_path / "mine.jsonl"
    jsonl.write_text(json.dumps(ROWS[0]) + "\n" + json.dumps({**ROWS[1], "sol": "no answer"}) + "\n")
    with pytest.raises(UserError, match=r"mine\.jsonl: line 2: column 'sol' has no '#### <answer>' answer"):
        load_custom(jsonl, MAP, answer_format="gsm8k")
    with pytest.raises(UserError, match="not found"):
        load_custom(tmp_path / "absent.jsonl", MAP)
    (tmp_path / "x.csv").write_text("q\n")
    with pytest.raises(UserError, match="unsupported problems file"):
        load_custom(tmp_path / "x.csv", MAP)
