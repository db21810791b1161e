"""The price of safety: HumanEval canonical solutions graded per second through the sandbox,
against running the same programs with no isolation (``exec`` in this process), and
against a plain subprocess per program (the isolation floor: a fresh interpreter).

The canonical solutions are the benchmark's own reference code, so running them outside
the sandbox is safe. Each arm grades all 164 programs sequentially (one worker), twice;
the faster round counts (a shared machine is noisy).

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

ROUNDS = 2


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


def best_rate(fn, programs: list[str]) -> tuple[float, int]:
    best = 0.0
    passed = 0
    for _ in range(ROUNDS):
        start = time.perf_counter()
        passed = fn(programs)
        best = max(best, len(programs) / (time.perf_counter() - start))
    return best, passed


def main() -> None:
    root = Path(__file__).resolve().parents[1]
    data_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else root.parent / "shared" / "datasets"
    tasks = humaneval.read_tasks(data_dir)
    programs = [humaneval.program(t, t.canonical_solution) for t in tasks]
    print(f"sandbox mode: {sandbox.describe()}")
    print(
        f"{len(programs)} HumanEval canonical solutions, 1 worker, best of {ROUNDS} rounds, {os.cpu_count()} cores"
    )
    rates = {}
    for name, fn in (
        ("no isolation (exec)", no_isolation),
        ("plain subprocess", plain_subprocess),
        ("sandbox", in_sandbox),
    ):
        rate, passed = best_rate(fn, programs)
        rates[name] = rate
        print(f"{name:>20}: {rate:8.1f} programs/s  ({passed}/{len(programs)} passed)")
    print(f"sandbox vs plain subprocess: {rates['plain subprocess'] / rates['sandbox']:.2f} x slower")
    print(f"figure sandbox_slowdown {rates['no isolation (exec)'] / rates['sandbox']:.1f} x")


if __name__ == "__main__":
    main()
