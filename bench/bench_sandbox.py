"""The price of safety: HumanEval canonical solutions graded per second through the sandbox,
against running the same programs with no isolation (``exec`` in this process), and
against a plain subprocess per program (the isolation floor: a fresh interpreter).

Two sandbox graders: the judged one that grading uses (the tests run in a separate judge
process calling the program over a pipe; the verdict is the judge's) and the old
exit-status one (tests appended to the program, exit status 0 = pass: fakeable). They
alternate round by round, so both see the same machine; ``figure judge_vs_exit_status``
is the judged grader's time per program over the old one's.

The canonical solutions are the benchmark's own reference code, so running them outside
the sandbox is safe. Each arm grades all 164 programs sequentially (one worker), ROUNDS
times; the fastest round counts (a shared machine is noisy).

    python bench/bench_sandbox.py [DATA_DIR]       # default ../shared/datasets
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
import time
from pathlib import Path

from prefdelta.evaluate import humaneval, sandbox

ROUNDS = 3


def no_isolation(programs: list[str]) -> int:
    passed = 0
    for prog in programs:
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                exec(compile(prog, "<humaneval>", "exec"), {"__name__": "__main__"})
            passed += 1
        except Exception:
            pass
    return passed


def plain_subprocess(programs: list[str]) -> int:
    return sum(
        subprocess.run([sys.executable, "-I", "-S", "-c", p], capture_output=True, timeout=10).returncode == 0
        for p in programs
    )


def in_sandbox(programs: list[str]) -> int:
    return sum(r.passed for r in sandbox.run_many(programs, workers=1))


def judged(tasks: list[humaneval.Task]) -> int:
    return sum(r.passed for r in humaneval.grade(tasks, [t.canonical_solution for t in tasks], workers=1))


def best_rates(arms: dict, n: int) -> dict[str, tuple[float, int]]:
    """Each arm's best programs/s over ROUNDS rounds, the arms alternating within a round."""
    best = {name: (0.0, 0) for name in arms}
    for _ in range(ROUNDS):
        for name, fn in arms.items():
            start = time.perf_counter()
            passed = fn()
            best[name] = (max(best[name][0], n / (time.perf_counter() - start)), passed)
    return best


def main() -> None:
    root = Path(__file__).resolve().parents[1]
    data_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else root.parent / "shared" / "datasets"
    tasks = humaneval.read_tasks(data_dir)
    programs = [humaneval.program(t, t.canonical_solution) for t in tasks]
    print(f"sandbox mode: {sandbox.describe()}")
    print(
        f"{len(programs)} HumanEval canonical solutions, 1 worker, best of {ROUNDS} rounds, {os.cpu_count()} cores"
    )
    n = len(programs)
    rates = {}
    for name, fn in (
        ("no isolation (exec)", no_isolation),
        ("plain subprocess", plain_subprocess),
    ):
        rate, passed = best_rates({name: lambda fn=fn: fn(programs)}, n)[name]
        rates[name] = rate
        print(f"{name:>24}: {rate:8.1f} programs/s  ({passed}/{n} passed)")
    sandboxed = best_rates(
        {
            "sandbox, exit status": lambda: in_sandbox(programs),
            "sandbox, judged": lambda: judged(tasks),
        },
        n,
    )
    for name, (rate, passed) in sandboxed.items():
        rates[name] = rate
        print(f"{name:>24}: {rate:8.1f} programs/s  ({passed}/{n} passed, {1000 / rate:.1f} ms/program)")
    judged_rate, old_rate = rates["sandbox, judged"], rates["sandbox, exit status"]
    print(f"judged sandbox vs plain subprocess: {rates['plain subprocess'] / judged_rate:.2f} x slower")
    print(f"figure sandbox_slowdown {rates['no isolation (exec)'] / judged_rate:.1f} x")
    print(f"figure judge_vs_exit_status {old_rate / judged_rate:.2f} x time per program")


if __name__ == "__main__":
    main()
