"""A workspace copied elsewhere runs, resumes and reports on its own: tables and records hold
paths relative to the workspace, so nothing in the copy reads, writes or names the original.

The study is the tiny one with a LoRA student kept as an adapter (``merge: false``): peft
writes the base model's absolute path into every adapter folder, the one place a path into
the workspace was stored absolute (``train/adapters.py``)."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from conftest import ROOT
from prefdelta.workspace import Workspace

pytestmark = pytest.mark.integration

TINY = ROOT / "tests" / "data" / "tiny_study.yaml"
ADAPTERS = "student.lora={r: 4, alpha: 8, merge: false}"
TEXT_SUFFIXES = {".json", ".jsonl", ".yaml", ".yml", ".md", ".html", ".csv", ".txt"}


def fingerprint(root: Path) -> dict[str, str]:
    """Every file under ``root`` by relative path, with a hash of its bytes."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def stored_strings(root: Path) -> Iterator[tuple[str, str]]:
    """(where, text) for every string a table or text file under ``root`` stores."""
    for p in sorted(root.rglob("*")):
        if not p.is_file():
            continue
        where = str(p.relative_to(root))
        if p.suffix == ".parquet":
            df = pd.read_parquet(p)
            for col in df.columns:
                yield f"{where}:{col}", str(col)
                if df[col].dtype == object or pd.api.types.is_string_dtype(df[col]):
                    for value in df[col].dropna().astype(str).unique():
                        yield f"{where}:{col}", value
        elif p.suffix in TEXT_SUFFIXES:
            yield where, p.read_text(errors="replace")


@pytest.fixture(scope="module")
def original(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from prefdelta.cli import main

    ws = tmp_path_factory.mktemp("site-a") / "original-workspace"
    main(["run", str(TINY), "-w", str(ws), "--set", ADAPTERS])
    return ws


def _model_shards(ws: Workspace, model_id: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for table in ("evals", "eval_samples"):
        for shard in ws.shards(table):
            ids = set(pd.read_parquet(ws.shard_path(table, shard), columns=["model_id"])["model_id"])
            if ids == {model_id}:
                out.setdefault(table, []).append(shard)
    return out


def test_a_moved_copy_resumes_and_reports_without_the_original(original: Path, tmp_path: Path) -> None:
    from prefdelta.cli import main
    from prefdelta.evaluate.models import ModelSpec
    from prefdelta.study.runner import plan
    from prefdelta.study.spec import load_spec

    cfg = load_spec(TINY, [ADAPTERS])
    expected_plan = [(row.stage, row.status) for row in plan(Workspace(original), cfg)]
    before = fingerprint(original)
    copy = tmp_path / "site-b" / "copy"
    shutil.copytree(original, copy, symlinks=True)
    away = original.with_name("original-moved-away")
    original.rename(away)  # the original's path is gone: anything that still points there fails
    try:
        ws = Workspace(copy)
        # the copy's stage keys are those of the original: nothing re-runs because it moved
        assert [(row.stage, row.status) for row in plan(ws, cfg)] == expected_plan

        # resume: one trained run's evaluation is lost; eval re-does only it, from the copy's runs/
        runs = ws.read_table("runs")
        assert runs["adapter"].all()
        run_id = str(runs["run_id"].iloc[0])
        adapter = ModelSpec(str(copy / "runs" / run_id / "final"))  # loaded by hand: its own base
        assert adapter.is_adapter and adapter.base_model == str((copy / "models" / "llama-a-early").resolve())
        lost = _model_shards(ws, run_id)
        assert set(lost) == {"evals", "eval_samples"}
        for table, shards in lost.items():
            for shard in shards:
                ws.shard_path(table, shard).unlink()
        main(["eval", "-w", str(copy), "--force"])
        main(["report", "-w", str(copy), "--force"])

        for where, text in stored_strings(copy):
            assert str(original) not in text and "original-workspace" not in text, where
            assert str(away) not in text, where

        for table in ("evals", "eval_samples"):
            key = ["model_id", "suite", *(["level", "metric"] if table == "evals" else ["problem_id"])]
            ours = ws.read_table(table)
            theirs = Workspace(away).read_table(table)
            key = [k for k in key if k in ours.columns]
            pd.testing.assert_frame_equal(
                ours.sort_values(key).reset_index(drop=True)[sorted(ours.columns)],
                theirs.sort_values(key).reset_index(drop=True)[sorted(theirs.columns)],
            )
        assert (copy / "reports" / "summary.md").read_text() == (away / "reports" / "summary.md").read_text()
        for csv in sorted((away / "reports" / "tables").glob("*.csv")):
            assert (copy / "reports" / "tables" / csv.name).read_bytes() == csv.read_bytes(), csv.name
    finally:
        away.rename(original)
    assert fingerprint(original) == before  # the original was neither read for writing nor touched
