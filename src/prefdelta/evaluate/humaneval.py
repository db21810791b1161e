"""HumanEval (Chen et al. 2021): turn a completion into a program and grade it in the sandbox.

A program is the problem's prompt (signature and docstring) followed by the model's
body, then the benchmark's ``check`` function and ``check(<entry point>)``. It passes
when it exits with status 0 inside the sandbox's limits; anything else — an assertion,
an exception, a timeout, a killed process — is a failure.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from prefdelta.evaluate.sandbox import Limits, Mode, RunResult, run_many
from prefdelta.sources.base import data_file, read_jsonl

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


def read_tasks(data_dir: str | Path) -> list[Task]:
    """The 164 tasks of ``<data_dir>/humaneval/HumanEval.jsonl.gz``, in file order."""
    path = data_file(Path(data_dir), "humaneval/HumanEval.jsonl.gz")
    return [
        Task(
            r.get("task_id", str),
            r.get("prompt", str),
            r.get("entry_point", str),
            r.get("canonical_solution", str),
            r.get("test", str),
        )
        for r in read_jsonl(path)
    ]


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


def program(task: Task, completion: str) -> str:
    """The whole program to run for ``completion``: code, the tests, the check call."""
    code = extract_code(task.prompt, completion, task.entry_point)
    return f"{code}\n\n{task.test}\n\ncheck({task.entry_point})\n"


def grade(
    tasks: Sequence[Task],
    completions: Sequence[str],
    limits: Limits | None = None,
    mode: Mode | None = None,
    workers: int = 2,
    on_result: Callable[[int, RunResult], None] | None = None,
) -> list[RunResult]:
    """Run each (task, completion) program in the sandbox; ``results[i].passed`` is the grade."""
    programs = [program(t, c) for t, c in zip(tasks, completions, strict=True)]
    return run_many(programs, limits, mode, workers=workers, on_result=on_result)
