"""The grown offline world: one graph rendered as a word problem, a program and a science
problem; the oracle on hand-built traces of every rendering; determinism; grading that
executes nothing; the pre-training mix."""

from __future__ import annotations

import random

import pytest

from prefdelta.judge.dimensions import DIMENSIONS
from prefdelta.judge.oracle import oracle_judge
from prefdelta.worlds.arith import ArithProblem, ArithSpec, Op, make_problems, reference_trace
from prefdelta.worlds.render import GraphView, render_code, render_stem

OPS = (Op("add", -1, 5, 12), Op("sub", 0, 3, 9), Op("mul", 1, 2, 18))
VIEW = GraphView("Ann", "She", "apples", 7, tuple((o.kind, o.operand) for o in OPS))


def problem(rendering: str) -> ArithProblem:
    if rendering == "word":
        text, prefixes = "Ann has 7 apples. She buys 5 more. She gives away 3. She gets 2 times as many.", ()
    else:
        r = {"code": render_code, "stem": render_stem}[rendering](random.Random(0), VIEW, 1, 1, 20)
        text, prefixes = r.text, r.step_prefixes
    return ArithProblem("p", "Ann", "apples", 7, OPS, text, rendering=rendering, step_prefixes=prefixes)


def trace(rendering: str, lines: list[str], final: str) -> str:
    prefix = "apples = " if rendering == "code" else ""
    return "\n".join(prefix + line for line in lines) + f"\n#### {final}"


RENDERINGS = ("word", "code", "stem")
PERFECT = ["7+5=<<7+5=12>>12", "12-3=<<12-3=9>>9", "9*2=<<9*2=18>>18"]


def test_the_renderings_carry_the_same_graph():
    code, stem = problem("code").text, problem("stem").text
    assert "print(apples)" in code and "```python" in code
    for n in ("7", "5", "3", "2"):
        assert n in code and n in stem
    for rendering in RENDERINGS:
        p = problem(rendering)
        assert p.answer == 18 and p.givens == (7, 5, 3, 2)
        assert oracle_judge(p, reference_trace(p))["outcome"] is True


@pytest.mark.parametrize("rendering", RENDERINGS)
def test_oracle_on_hand_built_traces_of_every_rendering(rendering):
    p = problem(rendering)

    def judge(lines: list[str], final: str) -> dict:
        return oracle_judge(p, trace(rendering, lines, final))

    perfect = judge(PERFECT, "18")
    assert all(perfect[d] == 5.0 for d in DIMENSIONS) and perfect["outcome"] is True
    slip = judge(["7+5=<<7+5=13>>13", "13-3=<<13-3=10>>10", "10*2=<<10*2=20>>20"], "20")
    assert slip["numerical_precision"] == pytest.approx(1 + 4 * 2 / 3) and slip["strategy_coherence"] == 5.0
    assert slip["outcome"] is False
    invented = judge(["7+6=<<7+6=13>>13", "13-3=<<13-3=10>>10", "10*2=<<10*2=20>>20"], "20")
    assert invented["factuality"] == pytest.approx(1 + 4 * 5 / 6) and invented["numerical_precision"] == 5.0
    redundant = judge(["7+5=<<7+5=12>>12", "7+3=<<7+3=10>>10", *PERFECT[1:]], "18")
    assert redundant["signal_to_noise"] == pytest.approx(1 + 4 * 3 / 4) and redundant["outcome"] is True
    skipped = judge(["7+5=<<7+5=12>>12", "9*2=<<9*2=18>>18"], "18")
    assert skipped["step_coherence"] == pytest.approx(3.0) and skipped["factuality"] == 5.0
    wrong_plan = judge(["7+5=<<7+5=12>>12", "12+3=<<12+3=15>>15", "15*2=<<15*2=30>>30"], "30")
    assert wrong_plan["strategy_coherence"] == pytest.approx(1 + 4 * 2 / 3) and wrong_plan["outcome"] is False
    garbage = oracle_judge(p, "print print apples ``` <<\n#### banana")
    empty = oracle_judge(p, "")
    for s in (garbage, empty):
        assert all(s[d] == 1.0 for d in DIMENSIONS) and s["outcome"] is False


@pytest.mark.parametrize("rendering", RENDERINGS)
def test_same_seed_same_problems_and_programs(rendering):
    spec = ArithSpec(rendering=rendering, distractors=1)
    a = make_problems(spec, 50, seed=4, prefix="s")
    b = make_problems(spec, 50, seed=4, prefix="s")
    assert [p.text for p in a] == [p.text for p in b] and [p.ops for p in a] == [p.ops for p in b]
    assert [p.text for p in a] != [p.text for p in make_problems(spec, 50, seed=5, prefix="s")]
    for p in a:  # every reference trace is perfect; distractor numbers are never givens
        s = oracle_judge(p, reference_trace(p))
        assert all(s[d] == 5.0 for d in DIMENSIONS) and s["outcome"]


def test_code_renderings_use_loops_helpers_and_unused_variables():
    ps = make_problems(ArithSpec(rendering="code", distractors=1, max_steps=4), 300, seed=1, prefix="c")
    texts = [p.text for p in ps]
    assert sum("for _ in range(" in t for t in texts) > 30
    assert sum("def scale(" in t for t in texts) > 30
    assert all(any(v in t for v in ("total", "count", "limit", "width", "offset", "size")) for t in texts)


def test_stem_renderings_convert_units():
    ps = make_problems(
        ArithSpec(rendering="stem", ops=["mul"], min_steps=2, max_steps=2, high=5), 100, 1, "u"
    )
    assert sum("measured in" in p.text for p in ps) > 20


def test_code_problems_are_graded_without_running_anything(monkeypatch):
    """The answer of a program is known from its graph: grading never executes it."""
    import subprocess

    from prefdelta.evaluate.grading import grade_texts
    from prefdelta.sources.arith import load

    def refuse(*a, **k):
        raise AssertionError("grading must not execute anything")

    import prefdelta.judge.annotations
    import prefdelta.judge.outcome  # noqa: F401 - imported first: defining dataclasses uses exec

    df = load("code", n=20, seed=1, spec={"rendering": "code"})
    rows = [r for _, r in df.iterrows()]
    monkeypatch.setattr(subprocess, "Popen", refuse)
    monkeypatch.setattr("builtins.exec", refuse)
    monkeypatch.setattr("builtins.eval", refuse)
    grades = grade_texts(["arith"] * len(rows), rows, list(df["reference_solution"]))
    assert all(g.correct for g in grades)
    wrong = grade_texts(["arith"] * len(rows), rows, ["#### -1"] * len(rows))
    assert not any(g.correct for g in wrong)


def test_pre_training_mix_splits_the_training_set():
    from prefdelta.errors import UserError
    from prefdelta.study.spec import parse_spec
    from prefdelta.zoo.config import WorldSet

    ws = WorldSet(n=1000, mix={"word": 0.8, "code": 0.1, "stem": 0.1})
    ps = ws.problems()
    counts = {r: sum(p.rendering == r for p in ps) for r in RENDERINGS}
    assert counts == {"word": 800, "code": 100, "stem": 100}
    with pytest.raises(UserError, match=r"zoo\.train\.mix.*sum to 1"):
        parse_spec({"zoo": {"train": {"mix": {"word": 0.5}}}}, "s")
