"""Parse GSM8K-style calculator annotations out of a reasoning trace.

A step is a line holding ``<<expr=value>>written`` (GSM8K's calculator format). Traces
are untrusted model output, so expressions are evaluated by a small recursive-descent
parser over numbers, ``+ - * /`` and parentheses — never with :func:`eval`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

ANNOTATION = re.compile(r"<<([^<>=]*)=([^<>]*)>>\s*(-?[\d,]*\.?\d+)?")
FINAL_ANSWER = re.compile(r"^\s*####\s*(.+?)\s*$", re.MULTILINE)
NUMBER = re.compile(r"-?\d[\d,]*\.?\d*|-?\.\d+")
_TOKEN = re.compile(r"\s*(\d+\.?\d*|\.\d+|[-+*/()])")


class ExprError(ValueError):
    """An expression the safe evaluator cannot read."""


def parse_number(text: str) -> Fraction | None:
    """``"1,234.50"`` → ``Fraction(2469, 2)``; ``None`` when not a number."""
    cleaned = text.strip().replace(",", "").rstrip(".")
    if cleaned.startswith("$"):
        cleaned = cleaned[1:]
    try:
        return Fraction(cleaned)
    except (ValueError, ZeroDivisionError):
        return None


def _tokenize(expr: str) -> list[str]:
    tokens: list[str] = []
    pos = 0
    expr = expr.replace(",", "").rstrip()
    while pos < len(expr):
        m = _TOKEN.match(expr, pos)
        if not m:
            raise ExprError(f"unexpected character {expr[pos : pos + 1]!r} in {expr!r}")
        tokens.append(m.group(1))
        pos = m.end()
    return tokens


def safe_eval(expr: str) -> Fraction:
    """Evaluate ``+ - * /`` arithmetic with parentheses exactly, as a :class:`Fraction`."""
    tokens = _tokenize(expr)
    if not tokens:
        raise ExprError("empty expression")
    pos = 0

    def peek() -> str | None:
        return tokens[pos] if pos < len(tokens) else None

    def take() -> str:
        nonlocal pos
        tok = tokens[pos]
        pos += 1
        return tok

    def atom() -> Fraction:
        tok = peek()
        if tok is None:
            raise ExprError(f"expression ends early: {expr!r}")
        if tok == "(":
            take()
            value = sum_()
            if peek() != ")":
                raise ExprError(f"missing ')' in {expr!r}")
            take()
            return value
        if tok == "-":
            take()
            return -atom()
        if tok in "+*/)":
            raise ExprError(f"unexpected {tok!r} in {expr!r}")
        return Fraction(take())

    def product() -> Fraction:
        value = atom()
        while peek() in ("*", "/"):
            op = take()
            rhs = atom()
            if op == "*":
                value *= rhs
            else:
                if rhs == 0:
                    raise ExprError(f"division by zero in {expr!r}")
                value /= rhs
        return value

    def sum_() -> Fraction:
        value = product()
        while peek() in ("+", "-"):
            op = take()
            rhs = product()
            value = value + rhs if op == "+" else value - rhs
        return value

    result = sum_()
    if pos != len(tokens):
        raise ExprError(f"trailing {tokens[pos]!r} in {expr!r}")
    return result


@dataclass(frozen=True)
class Step:
    """One annotated step of a trace.

    ``operands`` are the numbers in the expression, ``ops`` its operators in order,
    ``claimed`` the value after ``=`` inside the annotation, ``written`` the value
    written right after ``>>`` (``None`` when absent), ``true`` the exact value of the
    expression (``None`` when it cannot be evaluated).
    """

    line_no: int
    expr: str
    operands: tuple[Fraction, ...]
    ops: tuple[str, ...]
    claimed: Fraction | None
    written: Fraction | None
    true: Fraction | None

    @property
    def arithmetic_ok(self) -> bool:
        """The annotation's arithmetic is right and the written value matches it."""
        if self.true is None or self.claimed is None or self.true != self.claimed:
            return False
        return self.written is None or self.written == self.claimed

    @property
    def result(self) -> Fraction | None:
        """The value later steps can build on: what the trace wrote, else what it claimed."""
        return self.written if self.written is not None else self.claimed


@dataclass(frozen=True)
class ParsedTrace:
    steps: tuple[Step, ...]
    lines: tuple[str, ...]
    final_answer: str | None

    @property
    def final_value(self) -> Fraction | None:
        return parse_number(self.final_answer) if self.final_answer is not None else None


def parse_expr(expr: str) -> tuple[tuple[Fraction, ...], tuple[str, ...]]:
    """Operands and operators of a flat expression (unary minus folded into numbers)."""
    try:
        tokens = _tokenize(expr)
    except ExprError:
        return (), ()
    operands: list[Fraction] = []
    ops: list[str] = []
    negate = False
    prev_is_value = False
    for tok in tokens:
        if tok in "()":
            prev_is_value = tok == ")"
            continue
        if tok in "+-*/":
            if tok == "-" and not prev_is_value:
                negate = not negate
            else:
                ops.append(tok)
            prev_is_value = False
            continue
        value = Fraction(tok)
        operands.append(-value if negate else value)
        negate = False
        prev_is_value = True
    return tuple(operands), tuple(ops)


def final_answer(text: str) -> str | None:
    """The trace's last ``#### answer`` (what :func:`parse_trace` reports), without parsing steps.

    Grading needs only this line; parsing every annotation is ten times the work.
    """
    final = None
    for line in text.splitlines():
        m = FINAL_ANSWER.match(line)
        if m:
            final = m.group(1)
    return final


def parse_trace(text: str) -> ParsedTrace:
    """Split a trace into annotated steps, its non-empty lines and its ``#### answer``."""
    lines = tuple(line for line in text.splitlines() if line.strip())
    steps: list[Step] = []
    final: str | None = None
    for line_no, line in enumerate(lines):
        m_final = FINAL_ANSWER.match(line)
        if m_final:
            final = m_final.group(1)
            continue
        for m in ANNOTATION.finditer(line):
            expr = m.group(1)
            operands, ops = parse_expr(expr)
            try:
                true: Fraction | None = safe_eval(expr)
            except (ExprError, ValueError, ZeroDivisionError):
                true = None
            written = parse_number(m.group(3)) if m.group(3) else None
            steps.append(
                Step(
                    line_no=line_no,
                    expr=expr.strip(),
                    operands=operands,
                    ops=ops,
                    claimed=parse_number(m.group(2)),
                    written=written,
                    true=true,
                )
            )
    return ParsedTrace(steps=tuple(steps), lines=lines, final_answer=final)
