"""A user's own problems: a JSONL / Parquet file, a ``save_to_disk`` dataset folder or a
hub dataset, with a column mapping into the ``problems`` table.

Example (YAML of a ``problems`` entry or the CLI flags of ``prefdelta generate problems``)::

    path: data/my_problems.jsonl
    columns: {prompt: question, reference_answer: answer, id: uid, meta: [topic, level]}
    answer_format: gsm8k         # take the answer after '#### ' in the answer column

Every row must have the mapped columns; a missing one is an error naming the file, the
line (row) and the column — nothing is silently dropped. Values are checked by
:mod:`prefdelta.validate`: an empty prompt, an answer that is empty, NaN or infinite,
and an id (``columns.id``) given twice are refused the same way.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from prefdelta import validate
from prefdelta.errors import UserError
from prefdelta.judge.outcome import extract_boxed
from prefdelta.sources.base import (
    Record,
    format_number,
    parquet_records,
    problem_row,
    problems_frame,
    read_jsonl,
)
from prefdelta.sources.gsm8k import final_answer


class ColumnMap(BaseModel):
    """Which column of the user's data feeds which ``problems`` field."""

    model_config = ConfigDict(extra="forbid")

    prompt: str = Field("question", description="column with the problem statement")
    reference_answer: str | None = Field("answer", description="column with the answer; None: no answer")
    reference_solution: str | None = Field(None, description="column with a worked solution")
    id: str | None = Field(None, description="column with a native id (kept in meta)")
    meta: list[str] = Field(default_factory=list, description="columns copied into meta")


AnswerFormat = Literal["as_is", "gsm8k", "boxed"]


def _disk_dataset_records(path: Path, split: str) -> Iterator[Record]:
    import datasets

    try:
        ds = datasets.load_from_disk(str(path))
    except Exception as err:
        raise UserError(f"{path}: not a dataset folder saved with save_to_disk ({err})") from None
    if isinstance(ds, datasets.DatasetDict):
        if split not in ds:
            raise UserError(f"{path}: dataset has splits {', '.join(ds)}; got '{split}'")
        ds = ds[split]
    for i, row in enumerate(ds):
        yield Record(path, i + 1, dict(row), unit="row")


def records_of(location: str | Path, split: str = "test") -> Iterator[Record]:
    """Records of a JSONL(.gz) or Parquet file, a ``save_to_disk`` folder, or ``hub:<id>``."""
    text = str(location)
    if text.startswith("hub:"):
        from prefdelta.sources.hub import hub_records

        return hub_records(text[4:], split)
    path = Path(location).expanduser()
    if path.is_dir():
        return _disk_dataset_records(path, split)
    if not path.is_file():
        raise UserError(f"problems file {path} not found")
    if path.suffix == ".parquet":
        return parquet_records(path)
    if path.name.endswith((".jsonl", ".jsonl.gz", ".json")):
        return read_jsonl(path)
    raise UserError(
        f"{path}: unsupported problems file (expected .jsonl, .jsonl.gz, .parquet or a dataset folder)"
    )


def _answer(rec: Record, column: str, fmt: AnswerFormat) -> str:
    value = validate.answer(rec.get(column), rec.where, column)
    if fmt == "as_is":
        return format_number(rec.data[column])
    found = final_answer(value) if fmt == "gsm8k" else extract_boxed(value)
    if found is None or not found.strip():
        marker = "'#### <answer>'" if fmt == "gsm8k" else "\\boxed{}"
        raise UserError(f"{rec.where}: column '{column}' has no {marker} answer")
    return found


def load_custom(
    location: str | Path,
    columns: ColumnMap | None = None,
    *,
    source: str = "custom",
    split: str = "test",
    answer_format: AnswerFormat = "as_is",
) -> pd.DataFrame:
    """``problems`` rows of a user's data, ids ``<source>-<split>-<index>``."""
    cols = columns or ColumnMap()
    rows = []
    native_ids: list[tuple[object, str]] = []
    for i, rec in enumerate(records_of(location, split)):
        prompt = validate.text(rec.get(cols.prompt), rec.where, cols.prompt)
        answer = _answer(rec, cols.reference_answer, answer_format) if cols.reference_answer else ""
        solution = str(rec.get(cols.reference_solution)) if cols.reference_solution else ""
        meta = {c: rec.get(c) for c in cols.meta}
        if cols.id:
            meta["native_id"] = validate.identifier(rec.get(cols.id), rec.where, cols.id)
            native_ids.append((meta["native_id"], rec.where))
        try:
            json.dumps(meta, default=str)
        except (TypeError, ValueError) as err:  # pragma: no cover - default=str accepts everything
            raise UserError(f"{rec.where}: meta columns are not JSON-serialisable ({err})") from None
        rows.append(problem_row(source, split, i, prompt, answer, solution, **meta))
    if not rows:
        raise UserError(f"{location}: no problems found (the file is empty)")
    if cols.id:
        validate.unique(native_ids, cols.id, "problem id")
    return problems_frame(rows)
