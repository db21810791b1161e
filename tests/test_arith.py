"""The arith world: seeded, valid, and its texts and traces well-formed."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from prefdelta.worlds.arith import ArithProblem, ArithSpec, make_problems, prompt_text, reference_trace


def test_same_seed_same_problems_and_different_seed_differs():
    a = make_problems(ArithSpec(), 50, seed=7)
    b = make_problems(ArithSpec(), 50, seed=7)
    c = make_problems(ArithSpec(), 50, seed=8)
    assert [p.text for p in a] == [p.text for p in b]
    assert [p.problem_id for p in a] == [p.problem_id for p in b]
    assert [p.text for p in a] != [p.text for p in c]


@pytest.mark.parametrize(
    "spec",
    [
        ArithSpec(),
        ArithSpec(min_steps=5, max_steps=6, high=40),
        ArithSpec(ops=["add", "sub"], templates="alt", distractors=2),
        ArithSpec(ops=["mul"], low=1, high=5, mul_max=2, max_steps=3),
    ],
)
def test_problems_respect_their_spec(spec):
    for p in make_problems(spec, 200, seed=1):
        assert spec.min_steps <= len(p.ops) <= spec.max_steps
        assert spec.low <= p.start <= spec.high or p.start >= 1
        value = p.start
        for op in p.ops:
            assert op.kind in spec.ops
            value = {"add": value + op.operand, "sub": value - op.operand, "mul": value * op.operand}[op.kind]
            assert value == op.result
            assert 0 <= value <= spec.max_value
        assert p.answer == value
        assert len(p.distractor_numbers) == spec.distractors
        assert p.text.endswith(f"How many {p.obj} does {p.name} have now?")


def test_reference_trace_format():
    p = make_problems(ArithSpec(min_steps=3, max_steps=3), 1, seed=0)[0]
    lines = reference_trace(p).splitlines()
    assert len(lines) == 4
    assert lines[-1] == f"#### {p.answer}"
    for line in lines[:-1]:
        assert "=<<" in line and ">>" in line
    assert prompt_text(p.text).endswith("\n")


def test_meta_round_trip():
    for p in make_problems(ArithSpec(distractors=1), 20, seed=2):
        q = ArithProblem.from_meta(p.problem_id, p.text, p.to_meta())
        assert q == p


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"min_steps": 5, "max_steps": 2}, "min_steps"),
        ({"low": 30, "high": 20}, "low"),
        ({"ops": []}, "ops"),
        ({"ops": ["div"]}, "ops"),
        ({"templates": "fancy"}, "templates"),
    ],
)
def test_bad_spec_names_the_field(kwargs, message):
    with pytest.raises(ValidationError, match=message):
        ArithSpec(**kwargs)
