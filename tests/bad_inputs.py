"""The bad-input corpus: user files that every reader must refuse with exit 2 and one line.

Importable (not a test module) so that other suites — a chaos suite, a fuzzer — can reuse
the cases. Each :class:`BadInput` is a set of files (rows written as JSON lines or
Parquet by :func:`write_files`, or raw text), a ``prefdelta`` command whose ``{dir}`` and
``{ws}`` stand for the folder of the files and the workspace, and what the one-line
message must name: the file, the line (or row) and the field. ``tables`` are the
workspace tables that must not exist afterwards: a multi-table import is all or nothing.

Every case is one corruption of :data:`GOOD_IMPORT` or :data:`GOOD_PROBLEMS`, which are
accepted as they are (``tests/test_bad_inputs.py`` checks that too), so a case fails for
its own corruption and no other reason.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

DIMENSIONS = ("factuality", "strategy_coherence", "step_coherence", "numerical_precision", "signal_to_noise")
IMPORT_TABLES = ("traces", "judgments", "generators", "problems")
Rows = list[dict[str, Any]]


def _scores(value: float) -> dict[str, float]:
    return dict.fromkeys(DIMENSIONS, value)


def _good_import() -> dict[str, Rows]:
    traces = [
        {"trace_id": f"{g}-{p}", "problem_id": p, "generator_id": g, "text": f"{g} answers {p}: 4"}
        for g in ("7b_big", "1b_small")
        for p in ("p1", "p2")
    ]
    judgments = [
        {"trace_id": t["trace_id"], "judge_id": "j", "repeat": 0, "outcome": t["generator_id"] == "7b_big"}
        | _scores(4.0 if t["generator_id"] == "7b_big" else 2.0)
        for t in traces
    ]
    problems = [
        {"problem_id": "p1", "prompt": "What is 2 + 2?", "reference_answer": "4"},
        {"problem_id": "p2", "prompt": "What is 1 + 3?", "reference_answer": "4"},
    ]
    return {"traces.jsonl": traces, "judgments.jsonl": judgments, "problems.jsonl": problems}


GOOD_IMPORT: dict[str, Rows] = _good_import()
IMPORT_CMD = (
    "pairs import -w {ws} --traces {dir}/traces.jsonl --judgments {dir}/judgments.jsonl "
    "--problems {dir}/problems.jsonl"
)
GOOD_PROBLEMS: dict[str, Rows] = {
    "mine.jsonl": [
        {"uid": "a", "question": "What is 2 + 2?", "answer": 4},
        {"uid": "b", "question": "What is 3 + 3?", "answer": "6"},
        {"uid": "c", "question": "What is 1 + 1?", "answer": 2.0},
    ]
}
PROBLEMS_CMD = "problems -w {ws} --path {dir}/mine.jsonl --id-column uid --name mine"


@dataclass(frozen=True)
class BadInput:
    """One corrupt input: files, the command, and what its error message must name."""

    name: str
    files: dict[str, Rows | str]
    command: str
    file: str  # the file the message names
    line: str  # "line 3" or "row 2"
    field: str  # the field the message names, quoted in it as 'field'
    tables: tuple[str, ...] = field(default=IMPORT_TABLES)

    def args(self, folder: Path, workspace: Path) -> list[str]:
        return self.command.format(dir=folder, ws=workspace).split()


def write_files(files: dict[str, Rows | str], folder: Path) -> None:
    """Rows as JSON lines (NaN and Infinity as Python's json writes them) or Parquet.

    Parquet rows go through ``pyarrow.Table.from_pylist``, which keeps NaN as NaN (a
    pandas frame would turn it into null, which means "not scored").
    """
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        path = folder / name
        if isinstance(content, str):
            path.write_text(content)
        elif name.endswith(".parquet"):
            pq.write_table(pa.Table.from_pylist(content), path)
        else:
            path.write_text("".join(json.dumps(row) + "\n" for row in content))


def _import_case(
    name: str, file: str, index: int, changes: dict[str, Any], line: str, fld: str, *, append: bool = False
) -> BadInput:
    """``GOOD_IMPORT`` with row ``index`` of ``file`` changed (or a changed copy appended)."""
    files: dict[str, Rows | str] = copy.deepcopy(GOOD_IMPORT)  # type: ignore[arg-type]
    rows = files[file]
    assert isinstance(rows, list)
    if append:
        rows.append({**rows[index], **changes})
    else:
        rows[index] = {**rows[index], **changes}
    return BadInput(name, files, IMPORT_CMD, file, line, fld)


def _problems_case(name: str, index: int, changes: dict[str, Any], line: str, fld: str) -> BadInput:
    files: dict[str, Rows | str] = copy.deepcopy(GOOD_PROBLEMS)  # type: ignore[arg-type]
    rows = files["mine.jsonl"]
    assert isinstance(rows, list)
    rows[index] = {**rows[index], **changes}
    return BadInput(name, files, PROBLEMS_CMD, "mine.jsonl", line, fld, tables=("problems",))


def _parquet_judgments(name: str, index: int, changes: dict[str, Any], fld: str) -> BadInput:
    files: dict[str, Rows | str] = copy.deepcopy(GOOD_IMPORT)  # type: ignore[arg-type]
    rows = files.pop("judgments.jsonl")
    assert isinstance(rows, list)
    rows[index] = {**rows[index], **changes}
    files["judgments.parquet"] = rows
    command = IMPORT_CMD.replace("judgments.jsonl", "judgments.parquet")
    return BadInput(name, files, command, "judgments.parquet", f"row {index + 1}", fld)


NAN, INF = float("nan"), float("inf")

CASES: list[BadInput] = [
    # traces
    _import_case("duplicate trace id", "traces.jsonl", 0, {}, "line 5", "trace_id", append=True),
    _import_case("empty trace text", "traces.jsonl", 1, {"text": "  "}, "line 2", "text"),
    _import_case("trace text null", "traces.jsonl", 2, {"text": None}, "line 3", "text"),
    _import_case(
        "trace of an unknown problem", "traces.jsonl", 3, {"problem_id": "p9"}, "line 4", "problem_id"
    ),
    # judgments
    _import_case(
        "duplicate judgment (trace, judge, repeat)", "judgments.jsonl", 1, {}, "line 5", "repeat", append=True
    ),
    _import_case("score NaN", "judgments.jsonl", 0, {"factuality": NAN}, "line 1", "factuality"),
    _import_case("score +inf", "judgments.jsonl", 1, {"step_coherence": INF}, "line 2", "step_coherence"),
    _import_case("score -inf", "judgments.jsonl", 2, {"signal_to_noise": -INF}, "line 3", "signal_to_noise"),
    _import_case(
        "score a string", "judgments.jsonl", 3, {"strategy_coherence": "4"}, "line 4", "strategy_coherence"
    ),
    _import_case(
        "score above the scale",
        "judgments.jsonl",
        0,
        {"numerical_precision": 7},
        "line 1",
        "numerical_precision",
    ),
    _import_case("score below the scale", "judgments.jsonl", 1, {"factuality": 0}, "line 2", "factuality"),
    _import_case("score a boolean", "judgments.jsonl", 2, {"factuality": True}, "line 3", "factuality"),
    _import_case("outcome a string", "judgments.jsonl", 3, {"outcome": "yes"}, "line 4", "outcome"),
    _import_case(
        "judgment of an unknown trace", "judgments.jsonl", 2, {"trace_id": "ghost"}, "line 3", "trace_id"
    ),
    _parquet_judgments("Parquet score NaN", 1, {"factuality": NAN}, "factuality"),
    _parquet_judgments("Parquet score inf", 3, {"signal_to_noise": INF}, "signal_to_noise"),
    # problems of an import
    _import_case("empty prompt (import)", "problems.jsonl", 1, {"prompt": ""}, "line 2", "prompt"),
    _import_case(
        "duplicate problem id (import)", "problems.jsonl", 0, {}, "line 3", "problem_id", append=True
    ),
    _import_case(
        "answer NaN (import)", "problems.jsonl", 0, {"reference_answer": NAN}, "line 1", "reference_answer"
    ),
    _import_case(
        "answer inf (import)", "problems.jsonl", 1, {"reference_answer": INF}, "line 2", "reference_answer"
    ),
    _import_case(
        "answer empty (import)", "problems.jsonl", 0, {"reference_answer": " "}, "line 1", "reference_answer"
    ),
    # prefdelta problems --path (the custom problem source)
    _problems_case("empty prompt", 1, {"question": ""}, "line 2", "question"),
    _problems_case("prompt a number", 0, {"question": 12}, "line 1", "question"),
    _problems_case("answer NaN", 2, {"answer": NAN}, "line 3", "answer"),
    _problems_case("answer +inf", 0, {"answer": INF}, "line 1", "answer"),
    _problems_case("answer -inf", 1, {"answer": -INF}, "line 2", "answer"),
    _problems_case("answer empty", 2, {"answer": ""}, "line 3", "answer"),
    _problems_case("duplicate problem id", 2, {"uid": "a"}, "line 3", "uid"),
]
