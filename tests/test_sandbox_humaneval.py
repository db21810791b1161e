"""HumanEval through the sandbox: every canonical solution passes, every mutant fails, and
no completion of the adversarial corpus (tests/adversarial_completions.py) fakes a pass."""

from __future__ import annotations

import secrets
import time

import pytest

from adversarial_completions import (
    CORPUS,
    ENTRY,
    TASK_ID,
    processes_mentioning,
    require_isolation,
    sandbox_processes,
)
from prefdelta.evaluate import humaneval, sandbox
from prefdelta.evaluate.sandbox import Limits

pytestmark = pytest.mark.integration

TIGHT = Limits(cpu_s=2, wall_s=4, memory_mb=256, file_size_mb=1, max_procs=8, tmpfs_mb=4)


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


@pytest.fixture(scope="module")
def isolated_mode() -> str:
    return require_isolation()


@pytest.fixture(scope="module")
def task0(shared_datasets) -> humaneval.Task:
    task = next(t for t in humaneval.read_tasks(shared_datasets) if t.task_id == TASK_ID)
    assert task.entry_point == ENTRY
    return task


def test_the_corpus_covers_what_it_should():
    names = {a.name for a in CORPUS}
    assert len(names) == len(CORPUS)
    for kind in (
        "exit",
        "marker",
        "check",
        "builtins",
        "test_source",
        "fork",
        "thread",
        "atexit",
        "signal",
        "gc",
        "trace",
        "profile",
        "__builtins__",
        "del",
        "os_write",
        "token",
        "memory",
    ):
        assert any(kind in a.name or kind in a.what for a in CORPUS), kind


@pytest.mark.parametrize("adversary", CORPUS, ids=lambda a: a.name)
def test_adversarial_completion_fails_and_is_contained(
    adversary, task0, isolated_mode, tmp_path, monkeypatch
):
    token = secrets.token_hex(16)  # the run's token, fixed so that one adversary may even know it
    monkeypatch.setattr(sandbox, "_verdict_token", lambda: token)
    marker = str(400000 + secrets.randbelow(99999))
    outside = tmp_path / "outside"
    outside.mkdir()
    outside.chmod(0o777)  # only the sandbox, not file permissions, protects this folder
    canary = outside / "canary.txt"
    canary.write_text("alive")
    canary.chmod(0o666)
    completion = adversary.completion(token if adversary.knows_token else "", marker, str(outside))

    start = time.monotonic()
    run = humaneval.grade([task0], [completion], TIGHT, isolated_mode)[0]

    assert not run.passed, f"{adversary.name} was graded as passing"
    assert run.status in ("failed", "timeout")
    assert humaneval.result_text(run) != "passed"
    assert time.monotonic() - start < TIGHT.wall_s + 10  # the run ended
    # Contained: nothing left running, nothing outside changed, no secret seen.
    time.sleep(0.05)
    assert sandbox_processes() == []
    assert processes_mentioning(marker) == []
    assert sorted(p.name for p in outside.iterdir()) == ["canary.txt"]
    assert canary.read_text() == "alive"
    output = run.stdout + run.stderr
    assert "assert candidate(" not in output  # the tests never reach the program
    if not adversary.knows_token:
        assert token not in output


@pytest.mark.parametrize("adversary", [a for a in CORPUS if a.fools_exit_status], ids=lambda a: a.name)
def test_the_old_exit_status_grader_was_fooled(adversary, task0, isolated_mode, monkeypatch):
    """Why the judge exists: the same completions, graded by exit status, pass (or abort the run)."""
    token = secrets.token_hex(16)
    monkeypatch.setattr(sandbox, "_verdict_token", lambda: token)
    source = humaneval.program(task0, adversary.completion(token, "1", "/nonexistent"))
    if adversary.fools_exit_status == "aborts":
        with pytest.raises(sandbox.SandboxError):
            sandbox.run_python(source, TIGHT, isolated_mode)
    else:
        assert sandbox.run_python(source, TIGHT, isolated_mode).passed
    assert sandbox_processes() == []


def test_honest_completions_with_noise_still_pass(task0):
    """Output, hooks and an exit status of their own do not cost a right answer its pass."""
    from adversarial_completions import CORRECT

    noisy = [
        "```python\n" + CORRECT + "print('debugging', flush=True)\n```",
        "```python\nimport atexit, os\natexit.register(os._exit, 3)\n" + CORRECT + "```",
        "```python\nimport sys\nsys.stderr.write('warning\\n')\n" + CORRECT + "```",
        "```python\n" + CORRECT.replace("return any(", "return bool(any(").rstrip() + ")\n```",
    ]
    runs = humaneval.grade([task0] * len(noisy), noisy)
    assert [r.status for r in runs] == ["passed"] * len(noisy), [r.detail for r in runs]
    assert "debugging" in runs[0].stdout


def test_failures_say_why(task0):
    runs = humaneval.grade(
        [task0] * 3,
        [
            "    return None\n",
            "    raise ValueError('mutant')\n",
            "    return True\ndel has_close_elements\n",
        ],
    )
    texts = [humaneval.result_text(r) for r in runs]
    assert texts[0].startswith("failed: AssertionError")
    assert texts[1].startswith("failed: ValueError: mutant")
    assert runs[2].status == "failed" and "has_close_elements" in runs[2].detail
