"""Outcome grading: GSM8K numbers, \\boxed{} answers, multiple-choice letters."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from prefdelta.errors import UserError
from prefdelta.judge.outcome import (
    extract_boxed,
    extract_choice,
    extract_gsm8k,
    grade,
    grade_boxed,
    grade_choice,
    grade_gsm8k,
    grade_many,
)


@pytest.mark.parametrize(
    ("trace", "answer"),
    [
        ("He has 3 + 4 = <<3+4=7>>7.\n#### 7", "7"),
        ("so 2 * 9 = $<<2*9=18>>18 per day\nA: 18", "18"),
        ("Thus the answer is $1,250.", "1,250"),
        ("#### 5\nwait, recount\n#### 6", "6"),
    ],
)
def test_extract_gsm8k(trace: str, answer: str) -> None:
    assert extract_gsm8k(trace) == answer


def test_gsm8k_compares_exact_values() -> None:
    ref = "Janet sells 16 - 3 - 4 = <<16-3-4=9>>9 duck eggs.\n#### 1000"
    assert grade_gsm8k("A: $1,000", ref).correct
    assert grade_gsm8k("#### 1000.0", ref).correct
    assert grade_gsm8k("A: 1000 dollars", ref).correct
    assert not grade_gsm8k("A: 1001", ref).correct
    v = grade_gsm8k("I think it is about 1000", ref)
    assert (v.correct, v.method) == (False, "no_answer")
    assert grade_gsm8k("I think it is about 1000", ref, last_number_fallback=True).correct


def test_extract_boxed_balances_braces() -> None:
    text = r"first \boxed{1} then $\boxed{\frac{1}{2}}$."
    assert extract_boxed(text) == r"\frac{1}{2}"
    assert extract_boxed("no box") is None
    assert extract_boxed(r"\boxed{\frac{1}{2}") is None


@pytest.mark.parametrize(
    ("pred", "ref", "correct", "method"),
    [
        (r"so $\boxed{\dfrac{3}{4}}$", r"\frac{3}{4}", True, "exact"),
        (r"\boxed{0.75}", r"\frac34", True, "symbolic"),
        (r"\boxed{0.75}", r"\frac{3}{4}", True, "numeric"),
        (r"\boxed{12}", "13", False, "numeric"),
        (r"\boxed{\left( 3, \frac{\pi}{2} \right)}", r"(3,\frac{\pi}{2})", True, "exact"),
        (r"\boxed{2\sqrt{2}}", r"\sqrt{8}", True, "symbolic"),
        (r"\boxed{x^2+2x+1}", r"(x+1)^2", True, "symbolic"),
        (r"\boxed{\pi}", "3", False, "numeric"),
        (r"\boxed{\pi}", r"\frac{22}{7}", False, "numeric"),
        (r"\boxed{5}", "x+1", False, "shape"),
        (r"\boxed{5}", "(1,5)", False, "shape"),
        (r"\boxed{x=5}", "5", True, "symbolic"),
        (r"\boxed{10080}", "10,080", True, "symbolic"),
    ],
)
def test_grade_boxed(pred: str, ref: str, correct: bool, method: str) -> None:
    v = grade_boxed(pred, ref)
    assert (v.correct, v.method) == (correct, method)


def test_fast_path_never_disagrees_with_math_verify() -> None:
    pairs = [
        (r"\boxed{0.3333333}", r"\frac{1}{3}"),  # close numbers must go to math-verify
        (r"\boxed{10}", "10.0"),
        (r"\boxed{-\frac{1}{2}}", "-0.5"),
    ]
    for pred, ref in pairs:
        assert grade_boxed(pred, ref).correct == grade_boxed(pred, ref, fast=False).correct


@pytest.mark.parametrize(
    ("text", "letter"),
    [
        ("The answer is (B).", "B"),
        ("Answer: C", "C"),
        (r"Thus $\boxed{D}$", "D"),
        ("reasoning...\nA", "A"),
        ("I cannot decide", None),
    ],
)
def test_extract_choice(text: str, letter: str | None) -> None:
    assert extract_choice(text) == letter


def test_grade_choice_accepts_index_or_letter() -> None:
    assert grade_choice("The answer is (C)", 2).correct
    assert grade_choice("The answer is (C)", "c").correct
    assert not grade_choice("The answer is (C)", "A").correct
    with pytest.raises(UserError, match="not a letter"):
        grade_choice("A", "banana")


def test_grade_dispatch_and_bad_kind() -> None:
    assert grade("gsm8k", "#### 4", "4").correct
    with pytest.raises(UserError, match="unknown answer kind 'essay'"):
        grade("essay", "x", "y")


def test_grade_many_in_processes_matches_serial() -> None:
    preds = [r"\boxed{2\sqrt{2}}", r"\boxed{\sqrt{8}+1}", "#### 3", r"\boxed{x+1}", "(B)"]
    refs = [r"\sqrt{8}", r"\sqrt{8}", "3", "1+x", "1"]
    kinds = ["boxed", "boxed", "gsm8k", "boxed", "choice"]
    serial = grade_many(kinds, preds, refs, workers=1)
    parallel = grade_many(kinds, preds, refs, workers=2)
    assert [v.correct for v in serial] == [True, False, True, True, True]
    assert serial == parallel


def test_reproduces_gsm8k_model_solution_labels(shared_datasets: Path) -> None:
    rows = [json.loads(x) for x in (shared_datasets / "gsm8k/model_solutions.jsonl").read_text().splitlines()]
    test = [json.loads(x) for x in (shared_datasets / "gsm8k/test.jsonl").read_text().splitlines()]
    gens = ("6b_finetuning", "6b_verification", "175b_finetuning", "175b_verification")
    agree = total = 0
    for row, ref in zip(rows, test, strict=False):
        for g in gens:
            total += 1
            agree += grade_gsm8k(row[g]["solution"], ref["answer"]).correct == row[g]["is_correct"]
    assert total == 4000
    assert agree == total


@pytest.mark.parametrize(
    ("latex", "value"),
    [
        (r"3\sqrt{13}", 3 * 13**0.5),
        (r"\frac43", 4 / 3),
        (r"-\frac{\pi}{6}", -3.141592653589793 / 6),
        (r"\sqrt[3]{8}", 2.0),
        ("2^{10}", 1024.0),
        ("6-5i", 6 - 5j),
        ("1,2", None),
        ("x+1", None),
        (r"\sqrt{-1}", None),
        (r"\sin(\pi/6)", None),
    ],
)
def test_closed_form_value(latex: str, value: complex | None) -> None:
    from prefdelta.judge.closed_form import closed_form_value

    got = closed_form_value(latex)
    assert (got is None) == (value is None)
    if value is not None:
        assert abs(got - value) < 1e-9


@pytest.mark.parametrize(
    ("latex", "shape"),
    [
        ("5", "constant"),
        (r"\text{(C)}", "word"),
        ("(3,4]", "tuple"),
        ("1,-2", "tuple"),
        (r"\begin{pmatrix}1\\2\end{pmatrix}", "tuple"),
        ("2k+2", "expression"),
        ("10,080", None),  # a thousands separator, not a pair
        (r"(1,2]\cup[2,3)", "set"),  # a union: may equal one interval, never a constant
        (r"(-\infty,0]", "tuple"),
        (r"x\in[-2,7]", None),
        ("x=5", None),  # math-verify compares the right-hand side
        (r"\sin^2x+\cos^2x", None),  # functions may be constant
        ("90^\\circ", None),
        ("52_8", None),
    ],
)
def test_answer_shape(latex: str, shape: str | None) -> None:
    from prefdelta.judge.closed_form import answer_shape

    assert answer_shape(latex) == shape


@pytest.mark.parametrize(
    ("pred", "ref"),
    [
        (r"\boxed{90}", r"90^\circ"),
        (r"\boxed{\frac{\pi}{2}}", r"90^\circ"),
        (r"\boxed{27}", r"90^\circ"),
        (r"\boxed{(1,3)}", r"(1,2]\cup[2,3)"),
        (r"\boxed{\text{(C)}}", "3"),
        (r"\boxed{(1,2)}", r"\begin{pmatrix}1\\2\\3\end{pmatrix}"),
        (r"\boxed{6-5i}", "6"),
        (r"\boxed{12}", r"(0,9) \cup (9,36)"),
        (r"\boxed{(1,3)}", r"(1,3)\cup(3,3)"),
    ],
)
def test_fast_negatives_agree_with_math_verify(pred: str, ref: str) -> None:
    assert grade_boxed(pred, ref).correct == grade_boxed(pred, ref, fast=False).correct


def test_pathological_answer_times_out_per_item() -> None:
    preds = [r"\boxed{9^{9^{9^{9}}}}", r"\boxed{2\sqrt{2}}"]
    verdicts = grade_many("boxed", preds, ["1", r"\sqrt{8}"], workers=1, timeout_s=1)
    assert verdicts[0].correct is False and verdicts[0].method == "timeout"
    assert verdicts[1].correct is True


def test_fast_path_agrees_with_math_verify_on_math500(shared_datasets: Path) -> None:
    """Every verdict the fast path gives on real MATH-500 items is math-verify's verdict."""
    rows = [json.loads(x) for x in (shared_datasets / "math500/test.jsonl").read_text().splitlines()][:150]
    decided = 0
    for shift in (0, 1, 7):
        for i, row in enumerate(rows):
            gold = rows[(i + shift) % len(rows)]["answer"]
            fast = grade_boxed(row["solution"], gold)
            if fast.method in ("exact", "numeric", "shape"):
                decided += 1
                assert fast.correct == grade_boxed(row["solution"], gold, fast=False).correct, (
                    i,
                    shift,
                    gold,
                )
    assert decided > 350


def test_final_answer_is_parse_traces_last_answer_line():
    """Grading reads only the ``####`` line: the same answer as the full parse, on every
    rendering's traces and on the odd ones (several answer lines, CRLF, other separators)."""
    from prefdelta.judge.annotations import final_answer, parse_trace
    from prefdelta.worlds.arith import ArithSpec, make_problems, reference_trace

    texts = [
        reference_trace(p)
        for rendering in ("word", "code", "stem")
        for p in make_problems(ArithSpec(rendering=rendering, max_steps=4), 50, seed=1)
    ]
    texts += [
        "#### 5\n#### 6",
        "a\r\n#### 7\r\n",
        "####  \n",
        "x\u2028#### 9",
        "  ####3/4  ",
        "",
        "####",
        "1+1=<<1+1=2>>2",
    ]
    assert [final_answer(t) for t in texts] == [parse_trace(t).final_answer for t in texts]
    assert final_answer("#### 5\n#### 6") == "6" and final_answer("1+1=<<1+1=2>>2") is None
