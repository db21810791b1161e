"""HumanEval through the sandbox: every canonical solution passes, every mutant fails."""

from __future__ import annotations

import pytest

from prefdelta.evaluate import humaneval

pytestmark = pytest.mark.integration


def _mutants(task: humaneval.Task) -> list[str]:
    """Wrong bodies: return nothing, and raise; no HumanEval check accepts either."""
    return ["    return None\n", "    raise ValueError('mutant')\n"]


def test_canonical_pass_and_mutants_fail(shared_datasets):
    tasks = humaneval.read_tasks(shared_datasets)
    assert len(tasks) == 164
    # One batch for all: canonical solutions, then the "return None" mutants, then a
    # sample of "raise" mutants (a raised exception is the same path for every task).
    jobs = [(t, t.canonical_solution) for t in tasks]
    jobs += [(t, _mutants(t)[0]) for t in tasks]
    jobs += [(t, _mutants(t)[1]) for t in tasks[::20]]
    results = humaneval.grade([t for t, _ in jobs], [c for _, c in jobs], workers=2)
    canonical, mutated = results[: len(tasks)], results[len(tasks) :]
    failed = [t.task_id for t, r in zip(tasks, canonical, strict=True) if not r.passed]
    assert failed == [], f"canonical solutions failing: {failed[:5]}"
    survived = [jobs[len(tasks) + i][0].task_id for i, r in enumerate(mutated) if r.passed]
    assert survived == [], f"mutants that passed: {survived[:5]}"


def test_completion_extraction_real_formats(shared_datasets):
    task = humaneval.read_tasks(shared_datasets)[2]  # truncate_number
    # A base model continues the prompt and rambles on past the function.
    rambling = task.canonical_solution + "\n\ndef unrelated():\n    pass\n\nprint('hi')\n"
    code = humaneval.extract_code(task.prompt, rambling, task.entry_point)
    assert code.startswith(task.prompt + task.canonical_solution)
    assert "unrelated" not in code and "print" not in code
    # A chat model answers with a fenced, complete function.
    fenced = f"Here you go:\n```python\ndef {task.entry_point}(number: float) -> float:\n    return number % 1.0\n```\nDone."
    code = humaneval.extract_code(task.prompt, fenced, task.entry_point)
    assert code.startswith("def truncate_number") and "Here you go" not in code
    results = humaneval.grade([task, task], [rambling, fenced])
    assert [r.passed for r in results] == [True, True]
