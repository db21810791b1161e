"""GSM8K (Cobbe et al. 2021, "Training Verifiers to Solve Math Word Problems").

Grade-school word problems whose reference solutions carry calculator annotations
(``<<48/2=24>>``) and end in ``#### <answer>``: the same style as the arith world's
traces, which is why GSM8K is the first real source of the study.

Files (``<data-dir>/gsm8k/``): ``train.jsonl`` (7,473), ``test.jsonl`` (1,319) and
``model_solutions.jsonl`` (read by :func:`read_model_solutions` from wherever it lies) — real traces of four generators (6B and 175B GPT-3, each
fine-tuned alone or with a verifier) on the first 1,000 test questions, which give
real generator-level deltas without any GPU.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from prefdelta import validate
from prefdelta.errors import UserError
from prefdelta.hashing import stable_hash
from prefdelta.sources.base import (
    HubCopy,
    Record,
    data_file,
    open_records,
    problem_id,
    problem_row,
    problems_frame,
    read_records,
    require_data_dir,
)

SOURCE = "gsm8k"
SPLITS = ("train", "test")
MODEL_SOLUTION_GENERATORS = ("6b_finetuning", "6b_verification", "175b_finetuning", "175b_verification")
_FINAL = re.compile(r"####\s*(.+?)\s*$", re.S)
_WORDS = re.compile(r"\w+|[^\w\s]")


def final_answer(solution: str) -> str | None:
    """The answer after ``####`` with thousands separators removed (``"1,000"`` -> ``"1000"``)."""
    match = _FINAL.search(solution)
    return match.group(1).replace(",", "").strip() if match else None


def rows_from_records(records: Iterable[Record], split: str) -> list[dict[str, str]]:
    """``problems`` rows of GSM8K records (``question``, ``answer``)."""
    rows = []
    for i, rec in enumerate(records):
        question = rec.get("question", str)
        solution = rec.get("answer", str)
        answer = final_answer(solution)
        if answer is None:
            raise UserError(f"{rec.where}: column 'answer' has no final '#### <answer>' line")
        rows.append(problem_row(SOURCE, split, i, question, answer, solution, line=rec.line))
    return rows


def load(split: str = "test", data_dir: str | Path | None = None) -> pd.DataFrame:
    """GSM8K ``split`` ("train" or "test") as ``problems`` rows, ids ``gsm8k-<split>-<index>``."""
    if split not in SPLITS:
        raise UserError(f"gsm8k has splits {', '.join(SPLITS)}; got '{split}'")
    records = open_records(data_dir, f"gsm8k/{split}.jsonl", HubCopy("openai/gsm8k", split, "main"), SOURCE)
    return problems_frame(rows_from_records(records, split))


def approx_tokens(text: str) -> int:
    """Word and punctuation count: a tokenizer-free length for traces of unavailable models."""
    return len(_WORDS.findall(text))


def default_test_file(solutions: Path) -> Path:
    """The test questions the solutions refer to: ``test.jsonl`` beside the solutions file.

    That is where the published repository keeps both; elsewhere, name it with ``--test-file``.
    """
    beside = solutions.parent / "test.jsonl"
    if not beside.is_file():
        raise UserError(
            f"{solutions}: the GSM8K test questions it refers to are read from {beside}, which is not "
            "there; pass --test-file FILE"
        )
    return beside


def read_model_solutions(solutions: Path, test_file: Path | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Real traces of four GPT-3 generators on GSM8K test questions, from the solutions file.

    ``solutions`` is the published ``example_model_solutions.jsonl`` (in the shared data
    sets: ``gsm8k/model_solutions.jsonl``); ``test_file`` the GSM8K ``test.jsonl`` its
    questions come from (default: :func:`default_test_file`). Files, not a folder
    layout: a user's copies may sit anywhere and be named anything.

    Returns ``(problems, traces)``:

    - ``problems``: the rows of the test file (same ``problem_id`` as :func:`load` gives,
      e.g. ``gsm8k-test-00000``) of the questions that have model solutions, in file order.
    - ``traces``: one row per (question, generator) with ``trace_id``, ``problem_id``,
      ``generator_id`` (one of :data:`MODEL_SOLUTION_GENERATORS`), ``text`` (the solution
      as published, ending ``A: <answer>``), ``is_correct`` (the published grade),
      ``finish_reason`` ("stop"), ``n_tokens`` (word/punctuation count: the GPT-3
      tokenizer is not available offline) and ``sample`` (0).

    ``trace_id`` is ``stable_hash(generator_id, problem_id, 0, 0)``, the same formula the
    generate stage uses for (generator, problem, sample 0, seed 0).
    """
    if solutions.is_dir():
        hint = solutions / "gsm8k" / "model_solutions.jsonl"
        raise UserError(
            f"{solutions} is a folder: give the GSM8K model solutions file itself (e.g. {hint}), "
            "and --test-file FILE unless test.jsonl sits beside it"
        )
    records = read_records(solutions, "GSM8K model solutions")
    if not records:
        raise UserError(f"{solutions}: no model solutions found (the file is empty)")
    test_path = test_file if test_file is not None else default_test_file(solutions)
    test = problems_frame(rows_from_records(read_records(test_path, "GSM8K test questions"), "test"))
    by_question = {q: i for i, q in reversed(list(enumerate(test["prompt"])))}
    keep: list[int] = []
    seen: list[tuple[int, str]] = []
    traces = []
    for rec in records:
        question = rec.get("question", str)
        if question not in by_question:
            raise UserError(f"{rec.where}: column 'question' matches no question of {test_path}")
        index = by_question[question]
        keep.append(index)
        seen.append((index, rec.where))
        pid = problem_id(SOURCE, "test", index)
        for gen in MODEL_SOLUTION_GENERATORS:
            entry = rec.get(gen, dict)
            text = entry.get("solution")
            correct = entry.get("is_correct")
            if not isinstance(text, str) or not isinstance(correct, bool):
                raise UserError(
                    f"{rec.where}: column '{gen}' should hold 'solution' (text) and 'is_correct' (true/false)"
                )
            validate.text(text, rec.where, f"{gen}.solution")
            traces.append(
                {
                    "trace_id": stable_hash(gen, pid, 0, 0),
                    "problem_id": pid,
                    "generator_id": gen,
                    "sample": 0,
                    "text": text,
                    "is_correct": correct,
                    "finish_reason": "stop",
                    "n_tokens": approx_tokens(text),
                }
            )
    validate.unique(seen, "question", "question (its traces would share trace ids)")
    problems = test.iloc[keep].reset_index(drop=True)
    return problems, pd.DataFrame(traces)


def load_model_solutions(data_dir: str | Path | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """:func:`read_model_solutions` of a data directory laid out like the shared data sets
    (``gsm8k/model_solutions.jsonl`` beside ``gsm8k/test.jsonl``), as tests and benchmarks use it."""
    root = require_data_dir(data_dir, "gsm8k model solutions")
    return read_model_solutions(
        data_file(root, "gsm8k/model_solutions.jsonl"), data_file(root, "gsm8k/test.jsonl")
    )
