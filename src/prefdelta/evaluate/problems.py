"""Problems of a benchmark, through the project's loaders in :mod:`prefdelta.sources`.

``prefdelta.sources.<source>.load(split, data_dir)`` is the one place that reads a
benchmark. While a source has no loader there yet, the minimal readers below (same
``problems`` rows, same strict file/line errors) stand in; a loader that lands in
``prefdelta.sources`` takes over automatically.

The rows the evaluation needs: ``problem_id``, ``prompt`` (what the model sees inside
the template), ``reference_answer`` (a number, a LaTeX answer, or a choice letter) and,
for HumanEval, ``meta`` with ``entry_point`` and ``test``.
"""

from __future__ import annotations

import importlib
import json
import string
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from prefdelta.errors import UserError
from prefdelta.judge.outcome import extract_boxed
from prefdelta.sources.base import (
    data_file,
    format_number,
    problem_row,
    problems_frame,
    read_jsonl,
    require_data_dir,
)


def format_choices(question: str, choices: list[str]) -> str:
    """A multiple-choice prompt: the question, then ``A. …`` lines (MMLU's own layout)."""
    letters = string.ascii_uppercase
    return question.strip() + "\n\n" + "\n".join(f"{letters[i]}. {c}" for i, c in enumerate(choices))


def _math500(root: Path, split: str) -> pd.DataFrame:
    rows = [
        problem_row(
            "math500",
            split,
            i,
            r.get("problem", str),
            r.get("answer", str),
            r.get("solution", str),
            subject=r.get("subject", str),
            level=r.data.get("level"),
            unique_id=r.data.get("unique_id"),
        )
        for i, r in enumerate(read_jsonl(data_file(root, "math500/test.jsonl")))
    ]
    return problems_frame(rows)


def _minerva_math(root: Path, split: str) -> pd.DataFrame:
    rows = []
    for i, r in enumerate(read_jsonl(data_file(root, "minerva_math/test.jsonl"))):
        solution = r.get("solution", str)
        answer = extract_boxed(solution)
        if answer is None:
            raise UserError(f"{r.path}: line {r.line}: column 'solution' has no \\boxed{{}} answer")
        rows.append(
            problem_row(
                "minerva_math", split, i, r.get("problem", str), answer, solution, type=r.data.get("type")
            )
        )
    return problems_frame(rows)


def _competition(name: str) -> Callable[[Path, str], pd.DataFrame]:
    def load(root: Path, split: str) -> pd.DataFrame:
        rows = [
            problem_row(
                name,
                split,
                i,
                r.get("problem", str),
                format_number(r.get("answer", (str, int, float))),
                str(r.data.get("solution", "")),
                url=r.data.get("url"),
            )
            for i, r in enumerate(read_jsonl(data_file(root, f"{name}/test.jsonl")))
        ]
        return problems_frame(rows)

    return load


def _mmlu_stem(root: Path, split: str) -> pd.DataFrame:
    rows = []
    for i, r in enumerate(read_jsonl(data_file(root, "mmlu_stem/test.jsonl"))):
        choices = r.get("choices", list)
        answer = r.get("answer", int)
        if not 0 <= answer < len(choices):
            raise UserError(f"{r.path}: line {r.line}: column 'answer' {answer} is not a choice index")
        prompt = format_choices(r.get("question", str), [str(c) for c in choices])
        rows.append(
            problem_row(
                "mmlu_stem", split, i, prompt, string.ascii_uppercase[answer], "", subject=r.get("type", str)
            )
        )
    return problems_frame(rows)


def _humaneval(root: Path, split: str) -> pd.DataFrame:
    rows = [
        problem_row(
            "humaneval",
            split,
            i,
            r.get("prompt", str),
            "",
            r.get("canonical_solution", str),
            task_id=r.get("task_id", str),
            entry_point=r.get("entry_point", str),
            test=r.get("test", str),
        )
        for i, r in enumerate(read_jsonl(data_file(root, "humaneval/HumanEval.jsonl.gz")))
    ]
    return problems_frame(rows)


_STAND_INS: dict[str, Callable[[Path, str], pd.DataFrame]] = {
    "math500": _math500,
    "minerva_math": _minerva_math,
    "aime24": _competition("aime24"),
    "amc23": _competition("amc23"),
    "mmlu_stem": _mmlu_stem,
    "humaneval": _humaneval,
}


def load_problems(source: str, split: str = "test", data_dir: str | Path | None = None) -> pd.DataFrame:
    """``problems`` rows of ``source``/``split``, from ``prefdelta.sources`` when it has a loader."""
    try:
        module = importlib.import_module(f"prefdelta.sources.{source}")
    except ModuleNotFoundError as err:
        if err.name != f"prefdelta.sources.{source}":
            raise
        module = None
    if module is not None and hasattr(module, "load"):
        return module.load(split=split, data_dir=data_dir)
    if source not in _STAND_INS:
        raise UserError(
            f"unknown problem source {source!r}; known: {', '.join(sorted(_STAND_INS))} and gsm8k"
        )
    return _STAND_INS[source](
        require_data_dir(data_dir, f"{source} (no loader in prefdelta.sources yet)"), split
    )


def meta_of(row: pd.Series) -> dict:
    """The ``meta`` JSON of a problems row as a dict."""
    meta = row.get("meta", "{}")
    return json.loads(meta) if isinstance(meta, str) and meta else dict(meta or {})
