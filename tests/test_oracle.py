"""The arith oracle on hand-built traces: each flaw moves the dimension it should."""

from __future__ import annotations

import pytest

from prefdelta.judge.dimensions import DIMENSIONS
from prefdelta.judge.oracle import oracle_judge
from prefdelta.worlds.arith import ArithProblem, Op

# Ann has 7 apples. She buys 5 more. She gives away 3. She doubles them. -> 18
PROBLEM = ArithProblem(
    problem_id="p",
    name="Ann",
    obj="apples",
    start=7,
    ops=(Op("add", -1, 5, 12), Op("sub", 0, 3, 9), Op("mul", 1, 2, 18)),
    text="Ann has 7 apples. She buys 5 more. She gives away 3. She makes the pile 2 times as big. "
    "How many apples does Ann have now?",
)
PERFECT = "7+5=<<7+5=12>>12\n12-3=<<12-3=9>>9\n9*2=<<9*2=18>>18\n#### 18"


def judge(trace: str) -> dict:
    return oracle_judge(PROBLEM, trace)


def test_perfect_trace_scores_five_everywhere():
    s = judge(PERFECT)
    assert all(s[d] == 5.0 for d in DIMENSIONS)
    assert s["outcome"] is True


def test_arithmetic_slip_hits_numerical_precision_only():
    # 7+5 written as 13; the rest builds consistently on the slip.
    s = judge("7+5=<<7+5=13>>13\n13-3=<<13-3=10>>10\n10*2=<<10*2=20>>20\n#### 20")
    assert s["numerical_precision"] == pytest.approx(1 + 4 * 2 / 3)
    assert s["strategy_coherence"] == 5.0
    assert s["step_coherence"] == 5.0
    assert s["signal_to_noise"] == 5.0
    assert s["outcome"] is False


def test_invented_operand_hits_factuality_and_plan():
    # Uses 6 (not in the problem) instead of 5.
    s = judge("7+6=<<7+6=13>>13\n13-3=<<13-3=10>>10\n10*2=<<10*2=20>>20\n#### 20")
    assert s["factuality"] == pytest.approx(1 + 4 * 5 / 6)
    assert s["strategy_coherence"] == pytest.approx(1 + 4 * 2 / 3)
    assert s["numerical_precision"] == 5.0
    assert s["outcome"] is False


def test_redundant_step_hits_signal_to_noise_only():
    s = judge("7+5=<<7+5=12>>12\n7+3=<<7+3=10>>10\n12-3=<<12-3=9>>9\n9*2=<<9*2=18>>18\n#### 18")
    assert s["signal_to_noise"] == pytest.approx(1 + 4 * 3 / 4)
    assert s["numerical_precision"] == 5.0
    assert s["strategy_coherence"] == 5.0
    assert s["factuality"] == 5.0
    assert s["outcome"] is True


def test_skipped_step_hits_step_coherence_not_factuality():
    # Jumps to 9 without deriving it: a true value, but not from the steps before.
    s = judge("7+5=<<7+5=12>>12\n9*2=<<9*2=18>>18\n#### 18")
    assert s["factuality"] == 5.0
    assert s["step_coherence"] == pytest.approx(1 + 4 * 1 / 2)
    assert s["strategy_coherence"] == pytest.approx(1 + 4 * 2 / 3)
    assert s["outcome"] is True


def test_wrong_plan_hits_strategy():
    # Adds 3 where the problem takes 3 away: one of three planned operations is wrong.
    s = judge("7+5=<<7+5=12>>12\n12+3=<<12+3=15>>15\n15*2=<<15*2=30>>30\n#### 30")
    assert s["strategy_coherence"] == pytest.approx(1 + 4 * 2 / 3)
    assert s["numerical_precision"] == 5.0
    assert s["factuality"] == 5.0
    assert s["step_coherence"] == 5.0
    assert s["outcome"] is False


def test_entirely_wrong_plan_scores_one_on_strategy():
    s = judge("7*5=<<7*5=35>>35\n35+3=<<35+3=38>>38\n#### 38")
    assert s["strategy_coherence"] == 1.0
    assert s["numerical_precision"] == 5.0


def test_garbage_text_scores_one():
    s = judge("the the apples 7 more more\nsdfkj <<\n#### banana")
    assert all(s[d] == 1.0 for d in DIMENSIONS)
    assert s["outcome"] is False


def test_empty_trace_scores_one():
    s = judge("")
    assert all(s[d] == 1.0 for d in DIMENSIONS)
    assert s["outcome"] is False


def test_noise_lines_lower_signal_to_noise():
    s = judge("Let me think.\n" + PERFECT)
    assert s["signal_to_noise"] == pytest.approx(1 + 4 * 3 / 4)
    assert s["outcome"] is True


def test_reference_traces_are_perfect_for_generated_problems():
    from prefdelta.worlds.arith import ArithSpec, make_problems, reference_trace

    for p in make_problems(ArithSpec(templates="mixed", distractors=1, max_steps=6), 200, seed=3):
        s = oracle_judge(p, reference_trace(p))
        assert all(s[d] == 5.0 for d in DIMENSIONS), (p.text, s)
        assert s["outcome"]
