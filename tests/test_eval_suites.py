"""Suites as data, metrics with CIs, resume, and paired comparison (scripted backend)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pytest

from prefdelta.errors import UserError
from prefdelta.evaluate.compare import compare_models
from prefdelta.evaluate.runner import evaluate_suite, problem_scores
from prefdelta.evaluate.stats import paired_bootstrap_ci, stratified_bootstrap_ci
from prefdelta.evaluate.suites import builtin_suites, load_suite
from prefdelta.generate.base import Request, Result
from prefdelta.workspace import Workspace


class Scripted:
    """A backend that answers from a function of (request, sample index): a test double."""

    name = "scripted"

    def __init__(self, answer: Callable[[Request, int], str]) -> None:
        self.answer = answer
        self.calls = 0

    def generate(self, requests: Sequence[Request], on_result=None) -> list[Result]:
        self.calls += 1
        return [
            Result(r.request_id, j, self.answer(r, j), "stop") for r in requests for j in range(r.sampling.n)
        ]


def test_builtin_suites_load_with_defaults_filled():
    assert set(builtin_suites()) >= {"math_id", "stem_ood", "code_ood"}
    math = load_suite("math_id")
    by_name = {b.name: b for b in math.benchmarks}
    assert set(by_name) == {"gsm8k", "math500", "aime24", "amc23"}
    assert by_name["aime24"].metric == "avg@k" and by_name["aime24"].samples == 8
    assert by_name["math500"].sampling.temperature == 0.0 and "\\boxed{}" in by_name["math500"].template
    assert "####" in by_name["gsm8k"].template
    code = load_suite("code_ood").benchmarks[0]
    assert code.metric == "pass@k" and code.k == [1, 10] and code.samples == 10
    stem = {b.name: b.grader for b in load_suite("stem_ood").benchmarks}
    assert stem == {"mmlu_stem": "choice", "minerva_math": "boxed"}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("name: s\ndomain: in\nbenchmarks: []\n", "field 'benchmarks'"),
        (
            "name: s\ndomain: sideways\nbenchmarks: [{name: a, source: gsm8k, grader: gsm8k}]\n",
            "field 'domain'",
        ),
        (
            "name: s\ndomain: in\nbenchmarks: [{name: a, source: gsm8k, grader: regex}]\n",
            "field 'benchmarks.0.grader'",
        ),
        (
            "name: s\ndomain: in\nbenchmarks: [{name: a, source: humaneval, grader: humaneval, metric: pass@k, samples: 2, k: [5]}]\n",
            "pass@5 needs samples >= 5",
        ),
        (
            "name: s\ndomain: in\nbenchmarks: [{name: a, source: gsm8k, grader: gsm8k, template: 'no slot'}]\n",
            "{prompt}",
        ),
        ("name: s\ndomain: in\nbenchmarks:\n  - {name: a, source: gsm8k\n", "line"),
    ],
)
def test_bad_suite_files_name_the_problem(tmp_path, body, message):
    path = tmp_path / "suite.yaml"
    path.write_text(body)
    with pytest.raises(UserError, match=None) as err:
        load_suite(path)
    assert str(path) in str(err.value) and message in str(err.value)


def test_unknown_suite_name():
    with pytest.raises(UserError, match="unknown suite 'nope'"):
        load_suite("nope")


SUITE = """
name: mini
domain: in
defaults: {sampling: {max_tokens: 8}}
benchmarks:
  - {name: gsm8k, source: gsm8k, grader: gsm8k, limit: 10}
  - {name: mmlu, source: mmlu_stem, grader: choice, limit: 6, metric: avg@k, samples: 3,
     sampling: {temperature: 0.7, max_tokens: 8}}
"""


def _answers(good: set[int]):
    """Right answers on problems whose index is in ``good`` (and on sample 0 of MMLU only)."""

    def answer(req: Request, j: int) -> str:
        index = int(req.request_id.rsplit("-", 1)[1])
        if req.request_id.startswith("gsm8k"):
            return "#### 999999" if index not in good else f"#### {GSM8K_ANSWERS[index]}"
        letter = MMLU_ANSWERS[index] if (index in good and j == 0) else "Z"
        return f"The answer is ({letter}).\nAnswer: {letter}"

    return answer


GSM8K_ANSWERS: dict[int, str] = {}
MMLU_ANSWERS: dict[int, str] = {}


@pytest.fixture(scope="module")
def references(shared_datasets):
    from prefdelta.sources.registry import load_source as load_problems

    for source, table in (("gsm8k", GSM8K_ANSWERS), ("mmlu_stem", MMLU_ANSWERS)):
        df = load_problems(source, "test", shared_datasets).head(10)
        table.update({i: a for i, a in enumerate(df["reference_answer"])})
    return shared_datasets


def test_metrics_cis_resume_and_compare(tmp_path, references):
    path = tmp_path / "mini.yaml"
    path.write_text(SUITE)
    suite = load_suite(path)
    ws = Workspace(tmp_path / "ws")
    strong = Scripted(_answers(good=set(range(8))))
    rows = evaluate_suite(ws, suite, lambda: strong, "strong", "hash-s", references, workers=1)
    by = {(r.benchmark, r.metric): r for r in rows.itertuples()}
    gsm = by[("gsm8k", "accuracy")]
    assert (gsm.value, gsm.n) == (0.8, 10) and gsm.ci_low < 0.8 < gsm.ci_high and gsm.model_id == "strong"
    assert gsm.checkpoint_hash == "hash-s" and gsm.domain == "in" and gsm.level == "benchmark"
    mmlu = by[("mmlu", "avg@3")]
    assert mmlu.value == pytest.approx(6 / 6 / 3)  # all 6 problems right on 1 sample of 3
    suite_row = by[("mini", "macro_mean")]
    assert suite_row.level == "suite" and suite_row.value == pytest.approx((0.8 + 1 / 3) / 2)
    assert suite_row.ci_low <= suite_row.value <= suite_row.ci_high

    samples = ws.read_table("eval_samples")
    assert len(samples) == 10 + 6 * 3 and set(samples["benchmark"]) == {"gsm8k", "mmlu"}
    assert samples[samples["benchmark"] == "gsm8k"]["predicted"].iloc[0] == GSM8K_ANSWERS[0]

    def must_not_generate():
        raise AssertionError("finished benchmarks must be reused, not generated again")

    again = evaluate_suite(ws, suite, must_not_generate, "strong", "hash-s", references, workers=1)
    assert again["value"].tolist() == rows["value"].tolist()

    weak = Scripted(_answers(good={0, 1}))
    evaluate_suite(ws, suite, lambda: weak, "weak", "hash-w", references, workers=1)
    table = compare_models(ws.read_table("eval_samples"), "weak", "strong")
    gsm_diff = table[table["benchmark"] == "gsm8k"].iloc[0]
    assert gsm_diff["diff"] == pytest.approx(0.6) and gsm_diff["n"] == 10
    assert 0 < gsm_diff["ci_low"] <= 0.6 <= gsm_diff["ci_high"]
    with pytest.raises(UserError, match="no samples"):
        compare_models(ws.read_table("eval_samples"), "weak", "missing")


def test_pass_at_k_scores_from_samples():
    import pandas as pd

    samples = pd.DataFrame({"problem_id": ["a"] * 4 + ["b"] * 4, "correct": [1, 0, 0, 0, 0, 0, 0, 0]})
    samples["correct"] = samples["correct"].astype(bool)
    assert problem_scores(samples, "pass@1").tolist() == [0.25, 0.0]
    assert problem_scores(samples, "pass@2").tolist() == pytest.approx([0.5, 0.0])
    assert problem_scores(samples, "accuracy").tolist() == [0.25, 0.0]


def test_paired_interval_is_tighter_than_unpaired():
    rng = np.random.default_rng(0)
    a = (rng.random(300) < 0.5).astype(float)
    b = a.copy()
    b[rng.choice(300, 30, replace=False)] = 1.0  # b fixes some of a's errors
    diff, lo, hi = paired_bootstrap_ci(a, b)
    assert diff == pytest.approx(b.mean() - a.mean()) and lo > 0
    ulo, uhi = stratified_bootstrap_ci([b])
    alo, ahi = stratified_bootstrap_ci([a])
    assert (hi - lo) < (uhi - ulo) + (ahi - alo)
    with pytest.raises(ValueError):
        paired_bootstrap_ci([1.0], [1.0, 0.0])


def test_compare_works_on_arith_stage_samples():
    """The eval stage's arith samples have no benchmark column: the suite stands in."""
    import pandas as pd

    rows = []
    for model, right in (("gen-small", {0, 1}), ("run-top30", {0, 1, 2, 3})):
        rows += [
            {
                "model_id": model,
                "suite": "arith_in_domain",
                "problem_id": f"p{i}",
                "text": "",
                "correct": i in right,
            }
            for i in range(8)
        ]
    table = compare_models(pd.DataFrame(rows), "gen-small", "run-top30", n_boot=500)
    row = table.iloc[0]
    assert (row["benchmark"], row["metric"], row["n"]) == ("arith_in_domain", "accuracy", 8)
    assert row["diff"] == pytest.approx(0.25) and row["ci_low"] >= 0
