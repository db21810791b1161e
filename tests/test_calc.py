"""Calculator-annotation checker on hand-made and real GSM8K traces."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest

from prefdelta.judge.calc import (
    calc_judge,
    check_text_equation,
    check_trace,
    problem_numbers,
    text_equations,
    value_matches,
)

PROBLEM = (
    "Janet's ducks lay 16 eggs per day. She eats three for breakfast every morning and bakes "
    "muffins for her friends every day with four. She sells the remainder at the farmers' market "
    "daily for $2 per fresh duck egg. How much in dollars does she make every day?"
)
REFERENCE = (
    "Janet sells 16 - 3 - 4 = <<16-3-4=9>>9 duck eggs a day.\n"
    "She makes 9 * 2 = $<<9*2=18>>18 every day at the farmer's market.\n#### 18"
)
GOOD = (
    "She uses 3 + 4 = <<3+4=7>>7 eggs.\n"
    "She has 16 - 7 = <<16-7=9>>9 eggs left.\n"
    "She makes 9 * 2 = $<<9*2=18>>18.\nA: 18"
)


def test_good_trace_is_perfect_where_exact() -> None:
    r = check_trace(PROBLEM, REFERENCE, GOOD)
    assert r.numerical_precision == 1.0 and r.factuality == 1.0 and r.step_coherence == 1.0
    assert r.signal_to_noise == 1.0 and r.outcome
    assert r.strategy_coherence == 1.0  # 9 and 18 both computed
    assert (r.n_annotations, r.annotations_ok, r.n_text_equations, r.text_equations_ok) == (3, 3, 3, 3)
    assert calc_judge(PROBLEM, REFERENCE, GOOD)["factuality"] == 5.0


def test_prose_arithmetic_is_checked_outside_annotations() -> None:
    trace = "She uses 3 + 4 = <<3+4=7>>7 eggs.\nSo 16 - 7 = 8 are left, and 8 * 2 = 16.\nA: 16"
    r = check_trace(PROBLEM, REFERENCE, trace)
    assert r.annotations_ok == r.n_annotations == 1
    assert r.n_text_equations == 3 and r.text_equations_ok == 2  # 16 - 7 = 8 is wrong
    assert r.numerical_precision == pytest.approx(4 / 5)  # annotation, its copy, three prose equations
    assert not r.outcome


def test_wrong_annotation_and_wrong_copy() -> None:
    trace = "She uses 3 + 4 = <<3+4=8>>8 eggs.\nShe has 16 - 7 = <<16-7=9>>6 left.\nA: 6"
    r = check_trace(PROBLEM, REFERENCE, trace)
    assert r.annotations_ok == 1 and r.written_ok == 1  # 3+4=8 wrong; 9 then written 6


def test_float_repr_and_rounding() -> None:
    assert value_matches(Fraction(5, 3), Fraction("1.6666666666666665"), "1.6666666666666665")
    assert value_matches(Fraction(10, 3), Fraction("3.33"), "3.33")
    assert not value_matches(Fraction(10, 3), Fraction(3), "3")
    assert check_text_equation("100% - 25%", "75%") is True
    assert check_text_equation("$5,000 x 2.5%", "125") is True
    assert check_text_equation("2 x 0.5", "1.0") is True
    assert check_text_equation("2 ^ 3", "8") is None


def test_invented_operand_hits_factuality_and_step_coherence() -> None:
    trace = "She has 16 - 5 = <<16-5=11>>11 eggs.\nShe makes 11 * 2 = $<<11*2=22>>22.\nA: 22"
    r = check_trace(PROBLEM, REFERENCE, trace)
    assert r.factuality == pytest.approx(3 / 4)
    assert r.step_coherence == pytest.approx(1 / 2)
    assert r.strategy_coherence == 0.0


def test_underived_reference_value_counts_as_fact_not_as_available() -> None:
    trace = "She makes 9 * 2 = $<<9*2=18>>18.\nA: 18"  # 9 was never derived here
    r = check_trace(PROBLEM, REFERENCE, trace)
    assert r.factuality == 1.0 and r.step_coherence == 0.0
    assert r.strategy_coherence == pytest.approx(1 / 2)


def test_filler_lines_lower_signal_to_noise() -> None:
    trace = GOOD.replace("A: 18", "Let me double check.\nYes, that looks right.\nA: 18")
    assert check_trace(PROBLEM, REFERENCE, trace).signal_to_noise == pytest.approx(3 / 5)


def test_code_in_annotation_is_never_evaluated() -> None:
    trace = "x = <<__import__('os').system('echo pwned')=0>>0\nA: 0"
    r = check_trace(PROBLEM, REFERENCE, trace)
    assert r.n_annotations == 1 and r.annotations_ok == 0


def test_problem_numbers_words_and_percent() -> None:
    nums = problem_numbers("Half of the 12 apples, twice a dozen, and 25% of three pies.")
    assert {Fraction(1, 2), Fraction(2), Fraction(12), Fraction(25), Fraction(1, 4), Fraction(3)} <= nums


def test_text_equations_found_around_annotations() -> None:
    assert text_equations("so 2 * 9 = $<<2*9=18>>18 per day") == [("2 * 9", "18")]


def test_all_model_solutions_per_generator(shared_datasets: Path) -> None:
    """All 4,000 real traces: annotation arithmetic near-perfect, prose checked, strategy separates scales."""
    from prefdelta.judge.gsm8k_check import check_rows, summarize
    from prefdelta.sources.gsm8k import load_model_solutions

    s = summarize(check_rows(*load_model_solutions(shared_datasets)))
    assert s["n"].sum() == 4000
    assert (s["annotation_arith_ok"] > 0.99).all()
    assert (s["annotation_arith_ok"] < 1.0).all()  # the few real slips are found, not hidden
    assert (s["n_prose_equations"] > 2000).all()
    assert (s["prose_equations_ok"] < s["annotation_arith_ok"]).all()
    strat = s["strategy_coherence_share"]
    assert strat["175b_finetuning"] > strat["6b_finetuning"]
    assert strat["175b_verification"] > strat["6b_verification"]
    assert (s["grader_agreement"] == 1.0).all()
