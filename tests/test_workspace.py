"""Workspace tables: atomic shards, stage cache keys, clear errors."""

from __future__ import annotations

import pandas as pd
import pytest

from prefdelta.errors import UserError
from prefdelta.workspace import Workspace


def test_shards_union_and_prune(tmp_path):
    ws = Workspace(tmp_path)
    ws.write_shard("t", "a", pd.DataFrame({"x": [1, 2]}))
    ws.write_shard("t", "b", pd.DataFrame({"x": [3]}))
    assert sorted(ws.read_table("t")["x"]) == [1, 2, 3]
    ws.prune_shards("t", keep={"b"})
    assert list(ws.read_table("t")["x"]) == [3]


def test_temp_files_of_a_killed_write_are_ignored_and_pruned(tmp_path):
    ws = Workspace(tmp_path)
    ws.write_shard("t", "a", pd.DataFrame({"x": [1]}))
    stray = ws.table_dir("t") / ".b.parquet.tmp-999"
    stray.write_bytes(b"half a parquet file")
    assert ws.shards("t") == ["a"]
    assert list(ws.read_table("t")["x"]) == [1]
    ws.prune_shards("t", keep={"a"})
    assert not stray.exists()


def test_missing_table_is_a_user_error_naming_the_table(tmp_path):
    ws = Workspace(tmp_path)
    with pytest.raises(UserError, match=r"table 'pairs' not found.*needed by 'select'"):
        ws.read_table("pairs", required_by="select")
    with pytest.raises(UserError, match="needs table 'traces'"):
        ws.stage_key("judge", ["traces"], {}, "v1")


def test_stage_key_tracks_inputs_config_and_code(tmp_path):
    ws = Workspace(tmp_path)
    ws.write_table("t", pd.DataFrame({"x": [1]}))
    key = ws.stage_key("s", ["t"], {"a": 1}, "v1")
    assert key == ws.stage_key("s", ["t"], {"a": 1}, "v1")
    assert key != ws.stage_key("s", ["t"], {"a": 2}, "v1")
    assert key != ws.stage_key("s", ["t"], {"a": 1}, "v2")
    ws.mark_done("s", key, tables=["t"])
    assert ws.is_fresh("s", key)
    ws.write_table("t", pd.DataFrame({"x": [2]}))
    assert ws.stage_key("s", ["t"], {"a": 1}, "v1") != key
    ws.drop_table("t")
    assert not ws.is_fresh("s", key)


def test_workspace_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("PREFDELTA_WORKSPACE", str(tmp_path / "env-ws"))
    assert Workspace().root == (tmp_path / "env-ws").resolve()


def test_write_tables_is_all_or_nothing(tmp_path, monkeypatch):
    """An import of several tables that fails on the last one leaves none of them (and no
    temporary files); the tables the workspace had are untouched."""
    import errno

    import prefdelta.workspace as workspace
    from prefdelta.errors import DiskError

    ws = Workspace(tmp_path)
    ws.write_table("traces", pd.DataFrame({"trace_id": ["old"]}))
    real = workspace.stage_bytes

    def full_on_judgments(path, data):
        if "judgments" in str(path):
            raise workspace.disk_error(OSError(errno.ENOSPC, "No space left on device"), path)
        return real(path, data)

    monkeypatch.setattr(workspace, "stage_bytes", full_on_judgments)
    frames = {"traces": pd.DataFrame({"trace_id": ["new"]}), "judgments": pd.DataFrame({"trace_id": ["new"]})}
    with pytest.raises(DiskError, match=r"judgments.*no space left"):
        ws.write_tables(frames)
    assert ws.read_table("traces")["trace_id"].tolist() == ["old"]
    assert not ws.has_table("judgments")
    assert not [p for p in tmp_path.rglob("*") if ".tmp-" in p.name]
    monkeypatch.setattr(workspace, "stage_bytes", real)
    ws.write_tables(frames)
    assert ws.read_table("judgments")["trace_id"].tolist() == ["new"]


def test_an_unreadable_shard_is_a_user_error_naming_the_file(tmp_path):
    ws = Workspace(tmp_path)
    ws.write_shard("t", "a", pd.DataFrame({"x": [1]}))
    broken = ws.shard_path("t", "b")
    broken.write_bytes(b"not parquet at all")
    with pytest.raises(UserError, match=rf"^{broken}: not a readable Parquet shard .*delete it and re-run"):
        ws.read_table("t")
