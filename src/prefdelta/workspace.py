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

Why one schema per table: every shard is written with its table's declared Arrow schema
(:mod:`prefdelta.tables`), so a table folder reads as one table in any tool
(``pandas.read_parquet``, ``pyarrow.dataset``, ``datasets.load_dataset("parquet")``).
Shards an older version wrote with drifted types are cast on read, rewritten when their
table is next written, and all at once by ``prefdelta workspace repair``.

Why stage keys: a stage's key hashes its input tables, its config and the source of
the code that runs it. When the key equals the one recorded at its last completion
(and its outputs are still there), the stage is skipped.

A write that fails on the disk (full, read-only, not permitted, under a regular file)
removes its temporary files and raises a one-line :class:`~prefdelta.errors.DiskError`;
several tables written together (:meth:`Workspace.write_tables`) are all written or none.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from prefdelta import __version__
from prefdelta.errors import UserError, disk_error
from prefdelta.hashing import canonical_json, file_hash, stable_hash
from prefdelta.tables import ExtraPolicy, conform, effective_schema, from_frame

log = logging.getLogger(__name__)
ENV_VAR = "PREFDELTA_WORKSPACE"


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def make_dirs(path: Path) -> Path:
    """``mkdir -p path``; a disk or path problem is a one-line :class:`DiskError`."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise (disk_error(err, path, "create the folder") or err) from None
    return path


def _temp_of(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def stage_bytes(path: Path, data: bytes) -> Path:
    """Write ``data`` next to ``path`` in a fsynced temporary file and return it.

    The temporary file is removed when the write fails (a full disk leaves nothing
    behind); :func:`commit` renames it into place.
    """
    make_dirs(path.parent)
    tmp = _temp_of(path)
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException as err:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(err, OSError):
            raise (disk_error(err, path) or err) from None
        raise
    return tmp


def commit(tmp: Path, path: Path) -> None:
    """Rename a file from :func:`stage_bytes` over ``path`` (removed if the rename fails)."""
    try:
        os.replace(tmp, path)
    except OSError as err:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise (disk_error(err, path) or err) from None
    _fsync_dir(path.parent)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file, fsync and rename."""
    path = Path(path)
    commit(stage_bytes(path, data), path)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def parquet_bytes(table: pa.Table) -> bytes:
    """``table`` as Parquet file bytes (no pandas metadata: the schema says it all)."""
    sink = pa.BufferOutputStream()
    pq.write_table(table.replace_schema_metadata(None), sink)
    return sink.getvalue().to_pybytes()


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
        make_dirs(self.root)
        # shard -> (mtime_ns, size, schema): footers already read, so that writing shard
        # after shard does not re-read every sibling's footer
        self._footers: dict[Path, tuple[int, int, pa.Schema]] = {}
        # table -> (its schema, shards known to have it): a stage writing shard after shard
        # checks each sibling once, not at every write
        self._checked: dict[str, tuple[pa.Schema, set[str]]] = {}

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
        return make_dirs(self.root / name)

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
        """Atomically write one shard of ``table`` with the table's schema.

        When this shard brings a column its siblings lack (a custom rubric's dimension),
        the siblings are rewritten with it, so the folder stays one table for every reader.
        Siblings an older version wrote with drifted types are left to
        :meth:`prepare_output` (run before a stage writes, in its main process) and to
        :meth:`repair`: rewriting them here could race with a worker process that is
        deleting one of them.
        """
        data, _ = from_frame(table, df)
        path = self.shard_path(table, shard)
        names = [s for s in self.shards(table) if s != shard]
        known, checked = self._checked.get(table, (None, set()))
        others = {s: self._schema(self.shard_path(table, s)) for s in names if s not in checked}
        seen = [x for x in others.values() if x is not None] + ([known] if known is not None else [])
        siblings = effective_schema(table, seen)
        schema = effective_schema(table, [*seen, data.schema])
        widened = bool(names) and not schema.equals(siblings)
        if widened:
            others = {s: self._schema(self.shard_path(table, s)) for s in names}
            checked = set()
        atomic_write_bytes(path, parquet_bytes(conform(data, table, schema)))
        if widened:
            for s, found in others.items():
                if found is not None and not found.equals(schema):
                    self._rewrite(table, s, schema)
        self._checked[table] = (schema, checked | set(others) | {shard})
        return path

    def write_table(self, table: str, df: pd.DataFrame, extra: ExtraPolicy = "error") -> Path:
        """Replace ``table`` by ``df`` as a single shard named ``data``."""
        return self.write_tables({table: df}, extra)[table]

    def write_tables(
        self, frames: Mapping[str, pd.DataFrame], extra: ExtraPolicy = "error"
    ) -> dict[str, Path]:
        """Replace several tables at once, all or none (an import): every table is
        converted and written to a temporary file before any is renamed into place.

        ``extra="drop"``: columns a table does not declare are left out (a user's file
        may carry fields no stage reads) and named in a warning; ``"error"``: project code
        writing an undeclared column is a bug, raised as
        :class:`~prefdelta.tables.UndeclaredColumn`.
        """
        converted: dict[str, pa.Table] = {}
        for table, df in frames.items():
            data, dropped = from_frame(table, df, extra)
            if dropped:
                log.warning(f"{table}: columns not kept (no stage reads them): {', '.join(dropped)}")
            converted[table] = conform(data, table, effective_schema(table, [data.schema]))
        staged: list[tuple[Path, Path]] = []
        try:
            for table, data in converted.items():
                path = self.shard_path(table, "data")
                staged.append((stage_bytes(path, parquet_bytes(data)), path))
        except BaseException:
            for tmp, _ in staged:
                with contextlib.suppress(OSError):
                    tmp.unlink()
            raise
        out: dict[str, Path] = {}
        for (tmp, path), table in zip(staged, converted, strict=True):
            self._checked.pop(table, None)
            commit(tmp, path)
            self.prune_shards(table, keep={"data"})
            out[table] = path
        return out

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

    def remove_shards(self, table: str, shards: Iterable[str]) -> None:
        """Delete the named shards of ``table`` (and nothing else: other writers may be at work)."""
        for shard in shards:
            self.shard_path(table, shard).unlink(missing_ok=True)

    def clean_temp(self, table: str) -> None:
        """Remove temporary files a killed writer left in ``table`` (a stage does this before it runs)."""
        folder = self.table_dir(table)
        if folder.is_dir():
            for p in folder.glob(".*.tmp-*"):
                p.unlink(missing_ok=True)

    def prepare_output(self, table: str) -> None:
        """Before a stage writes ``table`` (in its main process, before any worker): remove
        temporary files a killed writer left, and rewrite the shards an older version wrote
        with drifted types, so that the stage's new shards join a consistent folder."""
        self.clean_temp(table)
        self.repair([table])

    def read_table(self, table: str, required_by: str | None = None) -> pd.DataFrame:
        """The union of ``table``'s shards, cast to the table's schema; a clear error when
        it does not exist."""
        shards = self.shards(table)
        if not shards:
            hint = f" (needed by '{required_by}': run the stage that writes it first)" if required_by else ""
            raise UserError(f"table '{table}' not found in workspace {self.root}{hint}")
        parts = {s: self._read_shard(table, s) for s in shards}
        schema = effective_schema(table, [p.schema for p in parts.values()])
        tables = [conform(p, table, schema, f"{self.shard_path(table, s)}: ") for s, p in parts.items()]
        return pa.concat_tables(tables).to_pandas()

    def repair(self, tables: Iterable[str] | None = None) -> list[Path]:
        """Rewrite every shard whose schema is not its table's (an older version's drift);
        returns the shards rewritten. Their content is unchanged, only the types."""
        names = list(tables) if tables is not None else self.tables()
        fixed: list[Path] = []
        for table in names:
            found = {s: self._schema(self.shard_path(table, s)) for s in self.shards(table)}
            schema = effective_schema(table, [x for x in found.values() if x is not None])
            for s, x in found.items():
                if x is not None and not x.equals(schema):
                    self._rewrite(table, s, schema)
                    fixed.append(self.shard_path(table, s))
        return fixed

    def tables(self) -> list[str]:
        """Names of the tables in the workspace (folders with at least one shard)."""
        folder = self.root / "tables"
        if not folder.is_dir():
            return []
        return sorted(p.name for p in folder.iterdir() if p.is_dir() and self.shards(p.name))

    def _read_shard(self, table: str, shard: str) -> pa.Table:
        path = self.shard_path(table, shard)
        try:
            return pq.read_table(path)
        except (pa.ArrowInvalid, OSError) as err:
            if isinstance(err, OSError) and disk_error(err, path, "read") is not None:
                raise disk_error(err, path, "read") from None  # type: ignore[misc]
            raise UserError(
                f"{path}: not a readable Parquet shard ({err}); delete it and re-run the stage that writes "
                f"table '{table}'"
            ) from None

    def _schema(self, path: Path) -> pa.Schema | None:
        """The schema stored in a shard's footer (cached by size and mtime), ``None`` when
        the shard vanished meanwhile (another process pruned it)."""
        try:
            st = path.stat()
            cached = self._footers.get(path)
            if cached is not None and cached[:2] == (st.st_mtime_ns, st.st_size):
                return cached[2]
            schema = pq.read_schema(path).remove_metadata()
        except FileNotFoundError:
            return None
        except pa.ArrowInvalid as err:
            raise UserError(f"{path}: not a readable Parquet shard ({err}); delete it and re-run") from None
        self._footers[path] = (st.st_mtime_ns, st.st_size, schema)
        return schema

    def _rewrite(self, table: str, shard: str, schema: pa.Schema) -> None:
        path = self.shard_path(table, shard)
        try:
            data = pq.read_table(path)
        except FileNotFoundError:
            return
        atomic_write_bytes(path, parquet_bytes(conform(data, table, schema, f"{path}: ")))

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
