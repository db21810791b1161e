"""Shared machinery of the problem sources: data directory, strict JSONL reading, rows.

Every loader turns one published benchmark file into rows of the ``problems`` table::

    problem_id, source, split, prompt, reference_answer, reference_solution, meta

``prompt`` is the problem statement as a model should see it (question, choices,
function signature), *without* an instruction template: templates are data
(``prefdelta/data/prompts``) applied at generation time, so one problems table serves
every generator. ``meta`` is a JSON string (subject, level, native id, …).

Why strict: a benchmark file with a silently skipped line changes every accuracy in a
study. A missing file, a line that is not JSON or a record without a needed column is a
:class:`~prefdelta.errors.UserError` naming the file, the line and the column.
"""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from prefdelta.errors import UserError

DATA_DIR_ENV = "PREFDELTA_DATA_DIR"
PROBLEM_COLUMNS = (
    "problem_id",
    "source",
    "split",
    "prompt",
    "reference_answer",
    "reference_solution",
    "meta",
)


def resolve_data_dir(data_dir: str | Path | None) -> Path | None:
    """``data_dir``, else ``$PREFDELTA_DATA_DIR``, else ``None`` (meaning: use the data hub)."""
    chosen = data_dir if data_dir not in (None, "") else os.environ.get(DATA_DIR_ENV) or None
    if chosen is None:
        return None
    path = Path(chosen).expanduser()
    if not path.is_dir():
        raise UserError(f"data directory {path} not found (from --data-dir or ${DATA_DIR_ENV})")
    return path


def require_data_dir(data_dir: str | Path | None, what: str) -> Path:
    """Like :func:`resolve_data_dir` for files that exist only locally (no hub copy)."""
    path = resolve_data_dir(data_dir)
    if path is None:
        raise UserError(f"{what} is read from a local data directory: pass --data-dir or set ${DATA_DIR_ENV}")
    return path


def data_file(data_dir: Path, relative: str) -> Path:
    """``data_dir / relative``; a :class:`UserError` naming the path when it is missing."""
    path = data_dir / relative
    if not path.is_file():
        raise UserError(f"data file {path} not found (expected under the data directory {data_dir})")
    return path


@dataclass(frozen=True)
class Record:
    """One JSON object of a JSONL file, with where it came from (for error messages)."""

    path: Path
    line: int
    data: dict[str, Any]
    unit: str = "line"  # "row" for Parquet files and datasets

    @property
    def where(self) -> str:
        return f"{self.path}: {self.unit} {self.line}"

    def get(self, column: str, kind: type | tuple[type, ...] | None = None) -> Any:
        """The value of ``column``; a :class:`UserError` naming file, line and column if absent or mistyped."""
        if column not in self.data or self.data[column] is None:
            have = ", ".join(sorted(self.data)) or "none"
            raise UserError(f"{self.where}: missing column '{column}' (columns present: {have})")
        value = self.data[column]
        if kind is not None and not isinstance(value, kind):
            names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
            raise UserError(f"{self.where}: column '{column}' should be {names}, got {type(value).__name__}")
        return value

    def optional(self, column: str, default: Any = None) -> Any:
        value = self.data.get(column)
        return default if value is None else value


def read_jsonl(path: Path) -> Iterator[Record]:
    """Records of a JSONL file (``.gz`` read transparently); blank lines are skipped.

    A line that is not a JSON object raises a :class:`UserError` with its line number.
    """
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8") as f:
            for number, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    data = json.loads(line)
                except json.JSONDecodeError as err:
                    raise UserError(
                        f"{path}: line {number}, column {err.colno}: not valid JSON ({err.msg})"
                    ) from None
                if not isinstance(data, dict):
                    raise UserError(
                        f"{path}: line {number}: expected a JSON object, got {type(data).__name__}"
                    )
                yield Record(path, number, data)
    except (OSError, EOFError, UnicodeDecodeError) as err:
        if isinstance(err, FileNotFoundError):
            raise UserError(f"data file {path} not found") from None
        raise UserError(f"{path}: cannot be read ({err})") from None


def parquet_records(path: Path) -> Iterator[Record]:
    """Rows of a Parquet file as records (``row N``, 1-based); null stays ``None``, NaN stays NaN."""
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as err:  # pyarrow raises several types for a damaged file
        raise UserError(f"{path}: not a readable Parquet file ({err})") from None
    for i, row in enumerate(table.to_pylist()):
        yield Record(path, i + 1, row, unit="row")


def read_records(path: Path, what: str) -> list[Record]:
    """Every record of a user's ``.jsonl`` / ``.jsonl.gz`` / ``.json`` (JSON lines) or ``.parquet`` file.

    Records keep the raw values (``None`` for null, NaN as NaN), so validators can tell
    a missing value from a corrupt one, and their line or row for the error message.
    """
    if not path.is_file():
        raise UserError(f"{what} file {path} not found")
    if path.suffix == ".parquet":
        return list(parquet_records(path))
    if path.name.endswith((".jsonl", ".jsonl.gz", ".json")):
        return list(read_jsonl(path))
    raise UserError(f"{path}: expected a .jsonl, .jsonl.gz or .parquet file for the {what}")


def problem_id(source: str, split: str, index: int) -> str:
    """Stable id of the ``index``-th problem (0-based, file order) of a published split."""
    return f"{source}-{split}-{index:05d}"


def problem_row(
    source: str,
    split: str,
    index: int,
    prompt: str,
    reference_answer: str,
    reference_solution: str = "",
    **meta: Any,
) -> dict[str, str]:
    """One ``problems`` row; ``meta`` is stored as a JSON string."""
    return {
        "problem_id": problem_id(source, split, index),
        "source": source,
        "split": split,
        "prompt": prompt,
        "reference_answer": reference_answer,
        "reference_solution": reference_solution,
        "meta": json.dumps(meta, sort_keys=True, default=str),
    }


def problems_frame(rows: list[dict[str, str]]) -> pd.DataFrame:
    """Rows as a DataFrame with exactly the ``problems`` columns, in order."""
    return pd.DataFrame(rows, columns=list(PROBLEM_COLUMNS))


def format_number(value: float | int | str) -> str:
    """A published numeric answer as text: ``27.0`` -> ``"27"``, ``0.5`` stays ``"0.5"``."""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


@dataclass(frozen=True)
class HubCopy:
    """Where a source's published copy lives on the data hub (``datasets.load_dataset`` args)."""

    dataset: str
    split: str
    config: str | None = None


def open_records(
    data_dir: str | Path | None, relative: str, hub: HubCopy | None = None, source: str = ""
) -> Iterator[Record]:
    """Records of ``<data dir>/<relative>``, or of the hub copy when no data directory is set."""
    root = resolve_data_dir(data_dir)
    if root is not None:
        return read_jsonl(data_file(root, relative))
    if hub is None:
        return read_jsonl(data_file(require_data_dir(None, source or relative), relative))
    from prefdelta.sources.hub import hub_records

    return hub_records(hub.dataset, hub.split, hub.config)


def check_split(source: str, split: str, splits: tuple[str, ...] = ("test",)) -> None:
    if split not in splits:
        raise UserError(f"{source} has split(s) {', '.join(splits)}; got '{split}'")
