"""Calculator-annotation checker: exact and heuristic scores for GSM8K-style traces.

GSM8K traces (Cobbe et al. 2021) mark each computation as ``<<expr=value>>``; the
published model solutions were sampled with a calculator that filled in the value
inside the annotation, so the annotation's own arithmetic is almost always right. What
a model *writes* is the expression before it, the number after it, and any equation
it never annotated ("so 5 + 5 = 10 apples") — those are checked too.

Each dimension is a share in [0, 1], mapped to 1–5 by ``1 + 4 * share``
(:func:`prefdelta.judge.dimensions.share_to_score`). Only numerical precision is exact;
the rest are **heuristics** over numbers, documented as such:

- **numerical precision** (exact) — share of checked computations that are right:
  every annotation re-evaluated with :func:`safe_eval` (no ``eval``), every value
  written right after an annotation against the annotation's value, and every
  unannotated equation ``a op b … = c`` in the prose. A result written with ``d``
  decimals counts as right when it equals the true value rounded to ``d`` decimals.
- **factuality** (heuristic) — share of annotation operands traceable to a *fact*:
  a number in the problem (digits, number words, ``half``/``twice``/``dozen``, a
  percentage or its fraction), a common unit constant (60, 24, 7, 12, 100 …), a result
  the trace derived earlier, or an intermediate value of the reference solution.
- **step coherence** (heuristic) — share of annotations whose operands are all
  *available at that point*: problem numbers, unit constants, or results of earlier
  steps of this trace (a reference intermediate the trace never derived does not count).
- **strategy coherence** (heuristic) — share of the reference solution's annotated
  intermediate values that the trace also computes (recall of the reference plan's
  values among the trace's results): the same plan produces the same intermediates.
- **signal-to-noise** (heuristic) — share of content lines (the ``A:`` / ``####`` line
  excluded) holding a step the final answer depends on, traced back from the final
  value through annotation results and operands.
- **outcome** — :func:`prefdelta.judge.outcome.grade_gsm8k` against the reference.

Numbers are matched exactly or within 0.01 (so a trace that rounds ``3.3333`` to
``3.33`` and builds on it is still traced).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from fractions import Fraction

from prefdelta.judge.annotations import ANNOTATION, ExprError, Step, parse_number, parse_trace, safe_eval
from prefdelta.judge.dimensions import DIMENSIONS, share_to_score
from prefdelta.judge.outcome import extract_gsm8k, grade_gsm8k

UNIT_CONSTANTS: frozenset[Fraction] = frozenset(
    Fraction(x) for x in (1, 2, 4, 7, 10, 12, 24, 30, 52, 60, 100, 365, 1000, 3600)
)
_UNITS = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
    "sixteen seventeen eighteen nineteen twenty"
)
_TENS = {"thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90}
NUMBER_WORDS: dict[str, tuple[Fraction, ...]] = {
    **{w: (Fraction(i),) for i, w in enumerate(_UNITS.split())},
    **{w: (Fraction(v),) for w, v in _TENS.items()},
    "hundred": (Fraction(100),),
    "thousand": (Fraction(1000),),
    "half": (Fraction(1, 2), Fraction(2)),
    "halves": (Fraction(1, 2), Fraction(2)),
    "twice": (Fraction(2),),
    "double": (Fraction(2),),
    "triple": (Fraction(3),),
    "thrice": (Fraction(3),),
    "quarter": (Fraction(1, 4), Fraction(4)),
    "third": (Fraction(1, 3), Fraction(3)),
    "dozen": (Fraction(12),),
    "pair": (Fraction(2),),
}
_WORD = re.compile(r"[a-z]+")
_NUM_IN_TEXT = re.compile(r"(?<![\w.])(\d[\d,]*(?:\.\d+)?|\.\d+)(\s*%)?")
_FINAL_LINE = re.compile(r"^\s*(?:####|A\s*:|Answer\s*:)", re.IGNORECASE)
_OPERAND = r"\$?\d[\d,]*(?:\.\d+)?%?"
_TEXT_EQUATION = re.compile(
    rf"(?<![\w.=])(-?{_OPERAND}(?:\s*[-+*/x×÷]\s*{_OPERAND})+)\s*=\s*\$?\s*(-?\d[\d,]*(?:\.\d+)?%?)(?![\d.]*\d)"
)
_TOLERANCE = Fraction(1, 100)
_FLOAT_DIGITS = 10


def problem_numbers(text: str) -> set[Fraction]:
    """Numbers a problem states: digits (percentages also as fractions) and number words."""
    out: set[Fraction] = set()
    for m in _NUM_IN_TEXT.finditer(text):
        value = parse_number(m.group(1))
        if value is None:
            continue
        out.add(value)
        if m.group(2):
            out.add(value / 100)
    for word in _WORD.findall(text.lower()):
        out.update(NUMBER_WORDS.get(word, ()))
        if word.endswith("s") and word[:-1] in NUMBER_WORDS:
            out.update(NUMBER_WORDS[word[:-1]])
    return out


def _near(x: Fraction, pool: set[Fraction]) -> bool:
    return x in pool or any(abs(x - p) <= _TOLERANCE for p in pool)


def _decimals(text: str) -> int:
    text = text.strip().replace(",", "")
    return len(text.split(".", 1)[1]) if "." in text else 0


def value_matches(true: Fraction, written: Fraction, written_text: str) -> bool:
    """``written`` equals ``true`` exactly, or rounded to the decimals it was written with."""
    if true == written:
        return True
    d = _decimals(written_text)
    if d == 0:
        return False
    if d >= _FLOAT_DIGITS:  # a float's repr (1.6666666666666665): compare as floats do
        return abs(true - written) <= Fraction(1, 10**9) * max(1, abs(true))
    return abs(true - written) <= Fraction(1, 2 * 10**d)


@dataclass(frozen=True)
class CalcReport:
    """Shares per dimension plus the counts behind numerical precision."""

    factuality: float
    strategy_coherence: float
    step_coherence: float
    numerical_precision: float
    signal_to_noise: float
    outcome: bool
    n_annotations: int
    annotations_ok: int
    n_written: int
    written_ok: int
    n_text_equations: int
    text_equations_ok: int

    def shares(self) -> dict[str, float]:
        return {d: getattr(self, d) for d in DIMENSIONS}

    def as_dict(self) -> dict[str, float | int | bool]:
        return asdict(self)


def _annotation_ok(step: Step, raw_claimed: str) -> bool:
    if step.true is None or step.claimed is None:
        return False
    return value_matches(step.true, step.claimed, raw_claimed)


def text_equations(line: str) -> list[tuple[str, str]]:
    """Unannotated equations in a line's prose: ``[(expression, written result), ...]``."""
    prose = ANNOTATION.sub(lambda m: " " + (m.group(3) or ""), line)
    prose = re.sub(r"<<[^>]*>>", " ", prose)
    return [(m.group(1), m.group(2)) for m in _TEXT_EQUATION.finditer(prose)]


def check_text_equation(expr: str, written: str) -> bool | None:
    """Whether a prose equation is right; ``None`` when the expression cannot be read."""
    cleaned = expr.replace("$", "").replace("×", "*").replace("÷", "/").replace("x", "*")
    if written.endswith("%"):  # "100% - 25% = 75%": arithmetic in percentage points
        cleaned, written = cleaned.replace("%", ""), written[:-1]
    else:
        cleaned = re.sub(r"(\d[\d,]*(?:\.\d+)?)%", r"(\1/100)", cleaned)
    value = parse_number(written)
    if value is None:
        return None
    try:
        true = safe_eval(cleaned)
    except (ExprError, ValueError, ZeroDivisionError):
        return None
    return value_matches(true, value, written)


def _reference_values(reference_solution: str) -> list[Fraction]:
    values: list[Fraction] = []
    for step in parse_trace(reference_solution).steps:
        if step.result is not None and step.result not in values:
            values.append(step.result)
    return values


def check_trace(problem: str, reference_solution: str, trace: str) -> CalcReport:
    """Score one GSM8K-style ``trace`` of ``problem`` against its reference solution."""
    parsed = parse_trace(trace)
    steps = parsed.steps
    matches = _annotation_matches(parsed.lines)
    raw_claims = [m.group(2) for m in matches]
    given = problem_numbers(problem)
    available_base = given | UNIT_CONSTANTS
    ref_values = _reference_values(reference_solution)
    final_text = extract_gsm8k(trace)
    outcome = grade_gsm8k(trace, reference_solution).correct if final_text is not None else False

    # numerical precision: annotations, values written after them, prose equations
    ann_ok = sum(_annotation_ok(s, raw) for s, raw in zip(steps, raw_claims, strict=True))
    written = [(s, m.group(3)) for s, m in zip(steps, matches, strict=True) if m.group(3)]
    written_ok = sum(
        s.claimed is not None and s.written is not None and value_matches(s.claimed, s.written, text)
        for s, text in written
    )
    text_checks = [
        check_text_equation(e, w)
        for line in parsed.lines
        if not _FINAL_LINE.match(line)
        for e, w in text_equations(line)
    ]
    text_checks_read = [c for c in text_checks if c is not None]
    n_checked = len(steps) + len(written) + len(text_checks_read)
    precision = (ann_ok + written_ok + sum(text_checks_read)) / n_checked if n_checked else 0.0

    derived: set[Fraction] = set()
    facts_total = facts_hit = coherent = 0
    for step in steps:
        for x in step.operands:
            facts_total += 1
            facts_hit += _near(abs(x), available_base | derived | set(ref_values))
        coherent += bool(step.operands) and all(
            _near(abs(x), available_base | derived) for x in step.operands
        )
        if step.result is not None:
            derived.add(step.result)
    factuality = facts_hit / facts_total if facts_total else 0.0
    step_coherence = coherent / len(steps) if steps else 0.0
    strategy = sum(_near(v, derived) for v in ref_values) / len(ref_values) if ref_values and steps else 0.0
    return CalcReport(
        factuality=factuality,
        strategy_coherence=strategy,
        step_coherence=step_coherence,
        numerical_precision=precision,
        signal_to_noise=_signal_to_noise(parsed.lines, steps, final_text),
        outcome=outcome,
        n_annotations=len(steps),
        annotations_ok=ann_ok,
        n_written=len(written),
        written_ok=written_ok,
        n_text_equations=len(text_checks_read),
        text_equations_ok=sum(text_checks_read),
    )


def _annotation_matches(lines: tuple[str, ...]) -> list[re.Match[str]]:
    return [m for line in lines if not re.match(r"^\s*####", line) for m in ANNOTATION.finditer(line)]


def _signal_to_noise(lines: tuple[str, ...], steps: tuple[Step, ...], final_text: str | None) -> float:
    content = [i for i, line in enumerate(lines) if not _FINAL_LINE.match(line)]
    if not content or final_text is None or not steps:
        return 0.0
    final = parse_number(final_text.replace("$", ""))
    if final is None:
        return 0.0
    needed = {final}
    useful: set[int] = set()
    for step in reversed(steps):
        if step.result is not None and _near(step.result, needed):
            needed.update(abs(x) for x in step.operands)
            useful.add(step.line_no)
    return len(useful & set(content)) / len(content)


def calc_judge(problem: str, reference_solution: str, trace: str) -> dict[str, float | bool]:
    """Scores 1–5 per dimension plus ``outcome`` (bool): the calc checker's judgment row."""
    report = check_trace(problem, reference_solution, trace)
    scores: dict[str, float | bool] = {k: share_to_score(v) for k, v in report.shares().items()}
    scores["outcome"] = report.outcome
    return scores
