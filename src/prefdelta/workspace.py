"""Tables on disk: atomic Parquet shards, stage cache keys and resume.

Layout of a workspace folder::

    tables/<table>/<shard>.parquet   one table = the union of its shards
    stages/<stage>.json              the cache key a stage last completed with
    models/<generator_id>/           save_pretrained folders of the zoo
    runs/<run_id>/                   training checkpoints and metrics
    reports/                         Markdown summaries and plots

Why shards: a stage splits its work into units (a generator × a batch of problems, say)
and writes one shard per finished unit. Each shard is written to a temporary file,
fsynced and renamed, so a killed stage leaves only whole shards; re-run, it skips the
units whose shards exist. Nothing is duplicated and nothing finished is lost.

Why stage keys: a stage's key hashes its input tables, its config and the source of
the code that runs it. When the key equals the one recorded at its last completion
(and its outputs are still there), the stage is skipped.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from prefdelta import __version__
from prefdelta.errors import UserError
from prefdelta.hashing import canonical_json, file_hash, stable_hash

ENV_VAR = "PREFDELTA_WORKSPACE"


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file, fsync and rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def code_version(*modules: ModuleType) -> str:
    """Hash of the package version and the source files of ``modules``."""
    parts: list[str] = [__version__]
    for module in modules:
        file = getattr(module, "__file__", None)
        parts.append(file_hash(file) if file else module.__name__)
    return stable_hash(*parts)


class Workspace:
    """A folder of tables, models, runs and reports shared by every stage."""

    def __init__(self, root: str | Path | None = None) -> None:
        root = root or os.environ.get(ENV_VAR) or "workspace"
        self.root = Path(root).expanduser().resolve()
        if self.root.exists() and not self.root.is_dir():
            raise UserError(f"workspace {self.root} exists and is not a folder")
        self.root.mkdir(parents=True, exist_ok=True)

    # ---- folders -------------------------------------------------------------------
    @property
    def models_dir(self) -> Path:
        return self._sub("models")

    @property
    def runs_dir(self) -> Path:
        return self._sub("runs")

    @property
    def reports_dir(self) -> Path:
        return self._sub("reports")

    @property
    def cache_dir(self) -> Path:
        return self._sub("cache")

    def relative(self, path: str | Path) -> str:
        """``path`` relative to the workspace when it lies inside (tables store these, so a
        workspace can be moved or copied), else absolute."""
        p = Path(path).resolve()
        try:
            return str(p.relative_to(self.root))
        except ValueError:
            return str(p)

    def resolve(self, path: str | Path) -> Path:
        """A path read from a table: relative ones are inside the workspace."""
        p = Path(path)
        return p if p.is_absolute() else self.root / p

    def _sub(self, name: str) -> Path:
        path = self.root / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    # ---- tables --------------------------------------------------------------------
    def table_dir(self, table: str) -> Path:
        return self.root / "tables" / table

    def shard_path(self, table: str, shard: str) -> Path:
        return self.table_dir(table) / f"{shard}.parquet"

    def shards(self, table: str) -> list[str]:
        """Names of the finished shards of ``table`` (temporary files are ignored)."""
        folder = self.table_dir(table)
        if not folder.is_dir():
            return []
        return sorted(p.stem for p in folder.glob("*.parquet") if not p.name.startswith("."))

    def has_table(self, table: str) -> bool:
        return bool(self.shards(table))

    def write_shard(self, table: str, shard: str, df: pd.DataFrame) -> Path:
        """Atomically write one shard of ``table``."""
        path = self.shard_path(table, shard)
        sink = pa.BufferOutputStream()
        pq.write_table(pa.Table.from_pandas(df, preserve_index=False), sink)
        atomic_write_bytes(path, sink.getvalue().to_pybytes())
        return path

    def write_table(self, table: str, df: pd.DataFrame) -> Path:
        """Replace ``table`` by ``df`` as a single shard named ``data``."""
        path = self.write_shard(table, "data", df)
        self.prune_shards(table, keep={"data"})
        return path

    def prune_shards(self, table: str, keep: Iterable[str]) -> None:
        """Delete shards not in ``keep`` (left by an earlier config) and stale temp files."""
        keep = set(keep)
        folder = self.table_dir(table)
        if not folder.is_dir():
            return
        for p in folder.iterdir():
            stale_tmp = p.name.startswith(".") and ".tmp-" in p.name
            if stale_tmp or (p.suffix == ".parquet" and p.stem not in keep):
                p.unlink(missing_ok=True)

    def clean_temp(self, table: str) -> None:
        """Remove temporary files a killed writer left in ``table`` (a stage does this before it runs)."""
        folder = self.table_dir(table)
        if folder.is_dir():
            for p in folder.glob(".*.tmp-*"):
                p.unlink(missing_ok=True)

    def read_table(self, table: str, required_by: str | None = None) -> pd.DataFrame:
        """The union of ``table``'s shards; a clear error when it does not exist."""
        shards = self.shards(table)
        if not shards:
            hint = f" (needed by '{required_by}': run the stage that writes it first)" if required_by else ""
            raise UserError(f"table '{table}' not found in workspace {self.root}{hint}")
        frames = [pd.read_parquet(self.shard_path(table, s)) for s in shards]
        frames = [f for f in frames if len(f)]
        if not frames:
            return pd.read_parquet(self.shard_path(table, shards[0]))
        return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]

    def table_hash(self, table: str) -> str:
        """Content hash of a table (its shard names and bytes)."""
        return stable_hash(*[(s, file_hash(str(self.shard_path(table, s)))) for s in self.shards(table)])

    def drop_table(self, table: str) -> None:
        shutil.rmtree(self.table_dir(table), ignore_errors=True)

    # ---- stage cache ---------------------------------------------------------------
    def stage_key(self, stage: str, inputs: Iterable[str], config: Any, version: str) -> str:
        """Cache key of a stage: its input tables' content, its config and code version."""
        missing = [t for t in inputs if not self.has_table(t)]
        if missing:
            raise UserError(
                f"stage '{stage}' needs table '{missing[0]}', which is not in workspace {self.root}; "
                "run the stage that writes it first"
            )
        return stable_hash(stage, {t: self.table_hash(t) for t in inputs}, canonical_json(config), version)

    def _stage_file(self, stage: str) -> Path:
        return self.root / "stages" / f"{stage}.json"

    def stage_record(self, stage: str) -> dict[str, Any] | None:
        path = self._stage_file(stage)
        if not path.exists():
            return None
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError:
            return None

    def is_fresh(self, stage: str, key: str) -> bool:
        """The stage completed with this key and its output tables and paths still exist."""
        record = self.stage_record(stage)
        if not record or record.get("key") != key:
            return False
        tables_ok = all(self.has_table(t) for t in record.get("tables", []))
        paths_ok = all((self.root / p).exists() for p in record.get("paths", []))
        return tables_ok and paths_ok

    def mark_done(
        self, stage: str, key: str, tables: Iterable[str] = (), paths: Iterable[str | Path] = (), **info: Any
    ) -> None:
        rel = [
            str(Path(p).resolve().relative_to(self.root)) if Path(p).is_absolute() else str(p) for p in paths
        ]
        record = {"key": key, "tables": list(tables), "paths": rel, "finished_at": time.time(), **info}
        atomic_write_text(self._stage_file(stage), json.dumps(record, indent=2, default=str))

    def invalidate(self, stage: str) -> None:
        self._stage_file(stage).unlink(missing_ok=True)
