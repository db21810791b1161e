"""Workspace tables readable by any tool: every shard is written with its table's declared
schema, a workspace written through the real stages reads as one table per folder in
pandas, pyarrow.dataset and datasets, and drifted shards of an older version are read
and repaired, not rejected."""

from __future__ import annotations

import glob
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pds
import pyarrow.parquet as pq
import pytest
import yaml

from conftest import ROOT, spec_from
from prefdelta.errors import UserError
from prefdelta.tables import TABLES, UndeclaredColumn
from prefdelta.workspace import Workspace

TINY = ROOT / "tests" / "data" / "tiny_study.yaml"


def small_spec():
    """The tiny study, smaller still, with two judges (one shard each, different columns)."""
    data = yaml.safe_load(TINY.read_text())
    data["generate"]["samples"] = 1
    data["judge"] = {"judges": [{"kind": "oracle"}, {"kind": "calc"}], "deltas_from": "arith-oracle"}
    data["select"] = {"key": "step_coherence", "fraction": 0.5}
    data["train"] = {"selections": ["all"], "epochs": 1, "batch_size": 4, "lr": 1e-4, "seeds": [0]}
    for suite in data["eval"]["suites"]:
        suite["n"] = 4
    return spec_from(data)


@pytest.fixture(scope="module")
def study_ws(tmp_path_factory) -> Path:
    from prefdelta.study.runner import run_study

    root = tmp_path_factory.mktemp("tables")
    run_study(Workspace(root), small_spec())
    return root


def table_folders(root: Path) -> list[Path]:
    return sorted(p for p in (root / "tables").iterdir() if p.is_dir())


@pytest.mark.integration
def test_every_table_of_a_study_is_declared_and_every_shard_has_its_schema(study_ws):
    folders = table_folders(study_ws)
    names = {p.name for p in folders}
    assert {"problems", "zoo", "traces", "generators", "judgments", "pairs", "selections", "runs"} <= names
    assert {"evals", "eval_samples"} <= names
    for folder in folders:
        assert folder.name in TABLES, f"table '{folder.name}' is not declared in prefdelta/tables.py"
        declared = TABLES[folder.name].schema
        for shard in folder.glob("*.parquet"):
            assert pq.read_schema(shard).remove_metadata().equals(declared), shard
    # two judges with different columns (the checker's counts) still make one judgments schema
    judgments = Workspace(study_ws).read_table("judgments")
    assert set(judgments["judge_id"]) == {"arith-oracle", "calc-checker"}
    assert judgments.loc[judgments["judge_id"] == "arith-oracle", "n_annotations"].isna().all()
    assert judgments.loc[judgments["judge_id"] == "calc-checker", "n_annotations"].notna().all()


@pytest.mark.integration
def test_every_table_folder_reads_in_pandas_pyarrow_and_datasets(study_ws, tmp_path):
    import datasets

    ws = Workspace(study_ws)
    for folder in table_folders(study_ws):
        expected = ws.read_table(folder.name)
        assert len(expected) > 0 or folder.name in ("generation_errors",), folder.name
        by_pandas = pd.read_parquet(folder)
        by_arrow = pds.dataset(folder, format="parquet").to_table()
        files = sorted(glob.glob(str(folder / "*.parquet")))
        by_datasets = datasets.load_dataset(
            "parquet", data_files=files, split="train", cache_dir=str(tmp_path / "hf-cache")
        )
        for got in (len(by_pandas), by_arrow.num_rows, by_datasets.num_rows):
            assert got == len(expected), folder.name
        assert list(by_pandas.columns) == list(expected.columns) == TABLES[folder.name].schema.names
        assert by_datasets.column_names == list(expected.columns)
        key = expected.columns[0]
        assert sorted(by_pandas[key].astype(str)) == sorted(expected[key].astype(str))
        assert sorted(map(str, by_datasets[key])) == sorted(expected[key].astype(str))


def drifted_workspace(root: Path) -> Workspace:
    """What an older version wrote: shards of one table whose types drifted apart (a
    null-typed column, an int column as strings, a column missing) and pandas metadata."""
    folder = root / "tables" / "eval_samples"
    folder.mkdir(parents=True)
    base = {
        "model_id": ["m", "m"],
        "checkpoint_hash": ["h", "h"],
        "suite": ["s", "s"],
        "benchmark": ["b", "b"],
        "problem_id": ["p1", "p2"],
        "sample": [0, 0],
        "text": ["x", "y"],
        "finish_reason": ["stop", "stop"],
        "error": [None, None],
    }
    a = pd.DataFrame({**base, "predicted": [None, None], "correct": [False, False]})  # null-typed
    b = pd.DataFrame({**base, "predicted": ["3", None], "correct": [True, False]})
    c = pd.DataFrame({**base, "sample": ["1", "2"], "correct": [True, True]})  # old: no predicted
    for name, df in (("a", a), ("b", b), ("c", c)):
        pq.write_table(pa.Table.from_pandas(df, preserve_index=False), folder / f"{name}.parquet")
    return Workspace(root)


def test_drifted_shards_are_read_cast_to_the_declared_schema(tmp_path):
    folder = tmp_path / "tables" / "eval_samples"
    ws = drifted_workspace(tmp_path)
    with pytest.raises(pa.ArrowException):  # what any tool met before
        pd.read_parquet(folder)
    df = ws.read_table("eval_samples")
    assert list(df.columns) == TABLES["eval_samples"].schema.names
    assert len(df) == 6
    assert sorted(df["sample"]) == [0, 0, 0, 0, 1, 2]
    assert df["predicted"].isna().sum() == 5 and "3" in set(df["predicted"].dropna())


def test_repair_rewrites_drifted_shards_so_any_tool_reads_the_folder(tmp_path):
    import datasets

    folder = tmp_path / "tables" / "eval_samples"
    ws = drifted_workspace(tmp_path)
    before = ws.read_table("eval_samples")
    fixed = ws.repair()
    assert sorted(p.name for p in fixed) == ["a.parquet", "b.parquet", "c.parquet"]
    assert ws.repair() == []  # nothing left to do
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]
    for shard in folder.glob("*.parquet"):
        assert pq.read_schema(shard).remove_metadata().equals(TABLES["eval_samples"].schema)
    assert len(pd.read_parquet(folder)) == 6
    ds = datasets.load_dataset(
        "parquet",
        data_files=sorted(glob.glob(str(folder / "*.parquet"))),
        split="train",
        cache_dir=str(tmp_path / "hf"),
    )
    assert ds.num_rows == 6
    pd.testing.assert_frame_equal(ws.read_table("eval_samples"), before)


NEW_ROW: list[pd.DataFrame] = []


def write_one_shard(ws: Workspace, cfg, ctx):
    """The body of a stage that adds one shard to ``eval_samples`` (as the eval stage does)."""
    from prefdelta.study.stage import StageOutput

    ws.write_shard("eval_samples", "d", NEW_ROW[0])
    return StageOutput(["eval_samples"], [], "")


def test_a_stage_repairs_the_drifted_shards_of_its_outputs_before_it_writes(tmp_path):
    from prefdelta.study.stage import Stage, run_stage

    folder = tmp_path / "tables" / "eval_samples"
    ws = drifted_workspace(tmp_path)
    (folder / ".d.parquet.tmp-1").write_bytes(b"what a killed writer left")
    NEW_ROW[:] = [ws.read_table("eval_samples").head(1).assign(problem_id="p9")]
    stage = Stage("probe", (), ("eval_samples",), (), write_one_shard, "adds a shard")
    run_stage(ws, stage, spec_from({"name": "probe"}), servers=None, force=True)  # type: ignore[arg-type]
    assert sorted(p.name for p in folder.iterdir()) == ["a.parquet", "b.parquet", "c.parquet", "d.parquet"]
    for shard in folder.glob("*.parquet"):
        assert pq.read_schema(shard).remove_metadata().equals(TABLES["eval_samples"].schema), shard
    assert len(pd.read_parquet(folder)) == 7


def test_repair_command_prints_what_it_rewrote(tmp_path):
    from typer.testing import CliRunner

    from prefdelta.cli import app

    drifted_workspace(tmp_path)
    result = CliRunner().invoke(app, ["workspace", "repair", "-w", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "3 shards rewritten" in result.output
    assert len(pd.read_parquet(tmp_path / "tables" / "eval_samples")) == 6
    again = CliRunner().invoke(app, ["workspace", "repair", "-w", str(tmp_path)])
    assert "every shard already has its table's schema" in again.output


def test_a_shard_missing_columns_gets_them_as_nulls_of_the_declared_type(tmp_path):
    ws = Workspace(tmp_path)
    ws.write_shard("traces", "empty", pd.DataFrame(columns=["trace_id", "problem_id", "text"]))
    ws.write_shard("traces", "one", pd.DataFrame({"trace_id": ["t"], "sample": [0], "text": ["x"]}))
    folder = ws.table_dir("traces")
    for shard in folder.glob("*.parquet"):
        assert pq.read_schema(shard).remove_metadata().equals(TABLES["traces"].schema)
    assert len(pd.read_parquet(folder)) == 1


def test_an_undeclared_column_from_project_code_names_the_table_and_the_column(tmp_path):
    ws = Workspace(tmp_path)
    with pytest.raises(UndeclaredColumn, match=r"table 'pairs': column 'surprise' is not declared"):
        ws.write_table("pairs", pd.DataFrame({"pair_id": ["p"], "surprise": [1]}))
    assert not ws.table_dir("pairs").exists() or not list(ws.table_dir("pairs").iterdir())


def test_a_custom_rubric_dimension_is_an_allowed_extra_and_every_judge_shard_gets_it(tmp_path):
    ws = Workspace(tmp_path)
    ws.write_shard("judgments", "oracle", pd.DataFrame({"trace_id": ["a"], "factuality": [3.0]}))
    ws.write_shard("judgments", "llm", pd.DataFrame({"trace_id": ["b"], "elegance": [4]}))
    schemas = [pq.read_schema(p).remove_metadata() for p in ws.table_dir("judgments").glob("*.parquet")]
    assert schemas[0].equals(schemas[1])
    assert schemas[0].field("elegance").type == pa.float64()
    df = pd.read_parquet(ws.table_dir("judgments"))
    assert sorted(df["elegance"].fillna(0)) == [0.0, 4.0]


def test_an_import_drops_columns_no_stage_reads_and_refuses_values_of_the_wrong_type(tmp_path):
    ws = Workspace(tmp_path)
    traces = pd.DataFrame({"trace_id": ["t"], "problem_id": [7], "text": ["x"], "mood": ["calm"]})
    ws.write_tables({"traces": traces}, extra="drop")
    got = ws.read_table("traces")
    assert "mood" not in got.columns and got["problem_id"].tolist() == ["7"]
    bad = pd.DataFrame({"trace_id": ["t"], "sample": ["first"]})
    with pytest.raises(UserError, match=r"table 'traces', column 'sample': expected int64"):
        ws.write_tables({"traces": bad}, extra="drop")
    assert ws.read_table("traces")["problem_id"].tolist() == ["7"]  # the old table is intact
