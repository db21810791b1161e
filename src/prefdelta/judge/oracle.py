"""Exact oracle judge of the arith world.

Each dimension is a share computed from the trace's annotated steps against the
problem's hidden computation graph, mapped to 1–5 by ``1 + 4 * share``. A trace with
no annotated step scores 1 everywhere. Definitions (docs/oracle.md has examples):

- **factuality** — share of operands that are true facts: a given quantity of the
  problem, a result the trace derived earlier, or the true value of an intermediate of
  the reference computation. An invented number is not.
- **strategy coherence** — share of the reference operations the trace performs: same
  operation, same given operand, applied to the trace's own value for the input node
  (so an earlier arithmetic slip does not count against the plan; where the input
  operation was missed, its true value or any earlier result of the trace stands in).
- **step coherence** — share of steps whose operands are all available at that point:
  given quantities or results of *earlier* steps of this trace. A skipped step makes
  the next one use an underived value.
- **numerical precision** — share of steps whose annotation arithmetic is exactly
  right and whose written result equals the annotated one.
- **signal-to-noise** — share of non-empty lines (the ``####`` line excluded) that are
  steps the final answer depends on, traced back from the ``####`` value.
- **outcome** — the ``####`` value equals the answer.
"""

from __future__ import annotations

from fractions import Fraction

from prefdelta.judge.annotations import ParsedTrace, Step, parse_trace
from prefdelta.judge.dimensions import DIMENSIONS, share_to_score
from prefdelta.worlds.arith import ArithProblem

_KIND = {"+": "add", "-": "sub", "*": "mul"}


def _kind(step: Step) -> str | None:
    return _KIND.get(step.ops[0]) if len(step.ops) == 1 and len(step.operands) == 2 else None


def _factuality(problem: ArithProblem, steps: tuple[Step, ...]) -> float:
    facts = {Fraction(v) for v in problem.givens} | {Fraction(op.result) for op in problem.ops}
    total = hit = 0
    derived: set[Fraction] = set()
    for step in steps:
        for x in step.operands:
            total += 1
            hit += x in facts or x in derived
        if step.result is not None:
            derived.add(step.result)
    return hit / total if total else 0.0


def _step_coherence(problem: ArithProblem, steps: tuple[Step, ...]) -> float:
    givens = {Fraction(v) for v in problem.givens}
    derived: set[Fraction] = set()
    ok = 0
    for step in steps:
        ok += bool(step.operands) and all(x in givens or x in derived for x in step.operands)
        if step.result is not None:
            derived.add(step.result)
    return ok / len(steps) if steps else 0.0


def _strategy(problem: ArithProblem, steps: tuple[Step, ...]) -> float:
    if not problem.ops:
        return 1.0
    trace_value: dict[int, Fraction] = {-1: Fraction(problem.start)}
    matched: set[int] = set()
    earlier: set[Fraction] = set()
    for step in steps:
        kind = _kind(step)
        if kind is not None:
            a, b = step.operands
            for j, op in enumerate(problem.ops):
                if j in matched or op.kind != kind:
                    continue
                if op.left in trace_value:
                    lefts = {trace_value[op.left]}
                else:  # the input op was done wrong or skipped: accept the trace's stand-in
                    lefts = {Fraction(problem.input_value(j)), *earlier}
                given = Fraction(op.operand)
                if (b == given and a in lefts) or (kind != "sub" and a == given and b in lefts):
                    matched.add(j)
                    if step.result is not None:
                        trace_value[j] = step.result
                    break
        if step.result is not None:
            earlier.add(step.result)
    return len(matched) / len(problem.ops)


def _signal_to_noise(parsed: ParsedTrace) -> float:
    content_lines = [ln for ln in parsed.lines if not ln.lstrip().startswith("####")]
    if not content_lines:
        return 0.0
    final = parsed.final_value
    if final is None:
        return 0.0
    needed = {final}
    useful_lines: set[int] = set()
    for step in reversed(parsed.steps):
        if step.result is not None and step.result in needed:
            needed.discard(step.result)
            needed.update(step.operands)
            useful_lines.add(step.line_no)
    return len(useful_lines) / len(content_lines)


def oracle_shares(problem: ArithProblem, trace: str) -> dict[str, float]:
    """Each dimension as a share in [0, 1] (0 where the trace has no step)."""
    parsed = parse_trace(trace)
    steps = parsed.steps
    if not steps:
        return dict.fromkeys(DIMENSIONS, 0.0)
    return {
        "factuality": _factuality(problem, steps),
        "strategy_coherence": _strategy(problem, steps),
        "step_coherence": _step_coherence(problem, steps),
        "numerical_precision": sum(s.arithmetic_ok for s in steps) / len(steps),
        "signal_to_noise": _signal_to_noise(parsed),
    }


def is_correct(problem: ArithProblem, trace: str) -> bool:
    """The trace's ``####`` value equals the problem's answer."""
    value = parse_trace(trace).final_value
    return value is not None and value == problem.answer


def oracle_judge(problem: ArithProblem, trace: str) -> dict[str, float | bool]:
    """Scores 1–5 per dimension plus ``outcome`` (bool) for one trace."""
    scores: dict[str, float | bool] = {k: share_to_score(v) for k, v in oracle_shares(problem, trace).items()}
    scores["outcome"] = is_correct(problem, trace)
    return scores
