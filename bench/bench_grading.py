"""Outcome grading throughput: prefdelta's grader against plain math-verify, same items.

Items (real data from ``$PREFDELTA_DATA_DIR`` or ``../shared/datasets``):

- GSM8K: the 4,000 released model solutions (6B/175B generators) against the test
  answers — the grader reads ``A: N`` / ``#### N`` and compares exact fractions;
- MATH-500: every reference solution against its own answer (500 correct items) and
  against the next problem's answer (500 incorrect items).

Peer: plain math-verify, ``verify(parse("$<gold>$"), parse(<prediction text>))``, one
item at a time, as a user would call it. Ours: :func:`prefdelta.judge.outcome.grade_many`
(fast exact/numeric path, math-verify for the rest in worker processes). Each side runs
in a fresh subprocess (math-verify caches parses, so sharing a process would flatter
whichever runs second) after the same warm-up on unrelated expressions. Verdicts must
be identical item for item.

Run: ``python bench/bench_grading.py``; the last line is the headline figure.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("PREFDELTA_DATA_DIR", ROOT.parent / "shared" / "datasets"))


def items() -> tuple[list[str], list[str], list[str]]:
    """(kinds, predictions, gold answers) for every benchmark item, in a fixed order."""
    from prefdelta.judge.outcome import gsm8k_reference

    kinds: list[str] = []
    preds: list[str] = []
    golds: list[str] = []
    test = [json.loads(x) for x in (DATA / "gsm8k/test.jsonl").read_text().splitlines()]
    for i, line in enumerate((DATA / "gsm8k/model_solutions.jsonl").read_text().splitlines()):
        row = json.loads(line)
        for gen in ("6b_finetuning", "6b_verification", "175b_finetuning", "175b_verification"):
            kinds.append("gsm8k")
            preds.append(row[gen]["solution"])
            golds.append(gsm8k_reference(test[i]["answer"]))
    math = [json.loads(x) for x in (DATA / "math500/test.jsonl").read_text().splitlines()]
    for shift in (0, 1):
        for i, row in enumerate(math):
            kinds.append("boxed")
            preds.append(row["solution"])
            golds.append(math[(i + shift) % len(math)]["answer"])
    return kinds, preds, golds


def warm_up() -> None:
    from math_verify import parse, verify

    for a, b in (("$\\frac{1}{2}$", "0.5"), ("$x^2$", "$x \\cdot x$"), ("$(1,2)$", "$\\{1, 2\\}$")):
        verify(parse(a), parse(b))


def run_side(side: str) -> None:
    """Grade every item with one method in this (fresh) process; print seconds and verdicts as JSON."""
    kinds, preds, golds = items()
    warm_up()
    start = time.perf_counter()
    if side == "math_verify":
        from math_verify import parse, verify

        verdicts = [bool(verify(parse(f"${g}$"), parse(p))) for p, g in zip(preds, golds, strict=True)]
    else:
        from prefdelta.judge.outcome import grade_many

        verdicts = [v.correct for v in grade_many(kinds, preds, golds, workers=2)]
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "verdicts": verdicts, "kinds": kinds}))


def main() -> None:
    if not DATA.is_dir():
        sys.exit(f"data sets not found at {DATA} (set PREFDELTA_DATA_DIR)")
    results = {}
    for side in ("math_verify", "prefdelta"):
        out = subprocess.run(
            [sys.executable, __file__, "--side", side],
            check=True,
            capture_output=True,
            text=True,
            env=os.environ,
        )
        results[side] = json.loads(out.stdout.strip().splitlines()[-1])
    mv, ours = results["math_verify"], results["prefdelta"]
    kinds = mv["kinds"]
    n = len(kinds)
    diff = [i for i in range(n) if mv["verdicts"][i] != ours["verdicts"][i]]
    for kind in ("gsm8k", "boxed"):
        idx = [i for i in range(n) if kinds[i] == kind]
        correct = sum(ours["verdicts"][i] for i in idx)
        print(
            f"{kind:6s} items {len(idx):5d}  graded correct {correct:5d}  disagreements {sum(i in diff for i in idx)}"
        )
    print(f"plain math-verify: {mv['seconds']:.2f} s ({n / mv['seconds']:.0f} items/s)")
    print(
        f"prefdelta grader : {ours['seconds']:.2f} s ({n / ours['seconds']:.0f} items/s, 2 worker processes)"
    )
    print(f"verdicts identical: {n - len(diff)}/{n}")
    if diff:
        sys.exit(f"verdicts differ on {len(diff)} items, e.g. item {diff[0]}")
    print(f"figure grading_speedup_vs_math_verify {mv['seconds'] / ours['seconds']:.1f} x")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--side":
        run_side(sys.argv[2])
    else:
        main()
