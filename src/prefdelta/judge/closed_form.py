"""Numeric value of a small LaTeX subset, for the outcome grader's fast *negative* path.

Many wrong ``\\boxed{}`` answers are closed-form constants (``3\\sqrt{13}``,
``-\\frac{\\pi}{6}``, ``\\frac43``, ``2^{10}``) compared with another constant. When both
sides evaluate here to real numbers clearly apart, no symbolic check can find them
equal, so the verdict "incorrect" needs no sympy. Anything outside the subset
(variables, text, units, degrees, percent, sets, tuples, equations) returns ``None``
and goes to math-verify.

Subset: decimal numbers, ``+ - \\cdot \\times / ^``, parentheses and braces,
``\\frac{a}{b}`` (and the ``\\frac43`` shorthand), ``\\sqrt{x}``, ``\\sqrt[n]{x}``,
``\\pi``, the imaginary unit ``i``, and implicit products before ``\\sqrt``, ``\\frac``,
``\\pi``, ``i`` and brackets. Values are complex numbers (``6-5i``).
"""

from __future__ import annotations

import cmath
import math
import re

_TOKEN = re.compile(r"\d+\.?\d*|\.\d+|\\frac|\\sqrt|\\pi|\\cdot|\\times|i|[-+*/^(){}\[\]]")
_MAX_EXPONENT = 64


class _Unsupported(ValueError):
    pass


def _tokens(s: str) -> list[str]:
    out: list[str] = []
    pos = 0
    while pos < len(s):
        m = _TOKEN.match(s, pos)
        if m is None:
            raise _Unsupported(s[pos:])
        out.append(m.group(0))
        pos = m.end()
    return out


def _real(value: complex) -> float:
    if isinstance(value, complex):
        if value.imag != 0:
            raise _Unsupported("complex value where a real is needed")
        return value.real
    return float(value)


def _unsupported(reason: str) -> float:
    raise _Unsupported(reason)


class _Parser:
    def __init__(self, tokens: list[str]) -> None:
        self.t = tokens
        self.i = 0

    def peek(self) -> str | None:
        return self.t[self.i] if self.i < len(self.t) else None

    def take(self, want: str | None = None) -> str:
        tok = self.peek()
        if tok is None or (want is not None and tok != want):
            raise _Unsupported(f"expected {want!r}")
        self.i += 1
        return tok

    def expr(self) -> complex:
        value = self.term()
        while self.peek() in ("+", "-"):
            value = value + self.term() if self.take() == "+" else value - self.term()
        return value

    def term(self) -> complex:
        value = self.power()
        while True:
            tok = self.peek()
            if tok in ("\\cdot", "\\times", "*", "/"):
                self.take()
                rhs = self.power()
                if tok == "/":
                    if rhs == 0:
                        raise _Unsupported("division by zero")
                    value /= rhs
                else:
                    value *= rhs
            elif tok in ("\\sqrt", "\\frac", "\\pi", "i", "(", "{"):
                value *= self.power()  # implicit product: 3\sqrt{2}, 2\pi, 2(3+1)
            else:
                return value

    def power(self) -> complex:
        base = self.unary()
        if self.peek() == "^":
            self.take()
            exponent = _real(self.argument())
            if abs(exponent) > _MAX_EXPONENT:
                raise _Unsupported("exponent too large")
            if base == 0 and exponent < 0:
                raise _Unsupported("division by zero")
            if exponent.is_integer():
                return base ** int(exponent)
            return _real(base) ** exponent if _real(base) >= 0 else _unsupported("complex power")
        return base

    def unary(self) -> complex:
        if self.peek() == "-":
            self.take()
            return -self.unary()
        if self.peek() == "+":
            self.take()
            return self.unary()
        return self.primary()

    def argument(self) -> complex:
        """A braced group, or one digit / one token (``\\frac43``, ``\\sqrt2``, ``x^2``)."""
        tok = self.peek()
        if tok == "{":
            return self.group("{", "}")
        if tok is not None and tok.isdigit():
            self.take()
            if len(tok) > 1:  # LaTeX binds one character: \frac43 is 4/3
                self.t.insert(self.i, tok[1:])
            return float(tok[0])
        return self.primary()

    def group(self, open_: str, close: str) -> complex:
        self.take(open_)
        value = self.expr()
        self.take(close)
        return value

    def primary(self) -> complex:
        tok = self.peek()
        if tok is None:
            raise _Unsupported("ends early")
        if tok == "(":
            return self.group("(", ")")
        if tok == "{":
            return self.group("{", "}")
        if tok == "\\pi":
            self.take()
            return math.pi
        if tok == "i":
            self.take()
            return 1j
        if tok == "\\frac":
            self.take()
            num = self.argument()
            den = self.argument()
            if den == 0:
                raise _Unsupported("division by zero")
            return num / den
        if tok == "\\sqrt":
            self.take()
            index = 2.0
            if self.peek() == "[":
                index = _real(self.group("[", "]"))
                if index <= 0:
                    raise _Unsupported("bad root")
            radicand = _real(self.argument())
            if radicand < 0:
                raise _Unsupported("complex root")
            return radicand ** (1.0 / index)
        if re.fullmatch(r"\d+\.?\d*|\.\d+", tok):
            self.take()
            return float(tok)
        raise _Unsupported(tok)


def closed_form_value(latex: str) -> complex | None:
    """The real value of a normalised (whitespace-free) LaTeX constant, or ``None`` outside the subset."""
    if not latex or "," in latex:
        return None
    try:
        parser = _Parser(_tokens(latex))
        value = parser.expr()
        if parser.i != len(parser.t):
            return None
    except (_Unsupported, OverflowError, ZeroDivisionError, RecursionError):
        return None
    return value if cmath.isfinite(value) else None


_WORD = re.compile(r"\\text\{\(?[A-Za-z]+\)?\}")
_DEGREES = re.compile(r"^(.+?)\^\{?\\circ\}?$")
_THOUSANDS = re.compile(r"^-?\d{1,3}(?:,\d{3})+(?:\.\d+)?$")
_RELATION_CHARS = ("=", "<", ">")
_RELATION_COMMANDS = {
    "\\le",
    "\\leq",
    "\\ge",
    "\\geq",
    "\\ne",
    "\\neq",
    "\\in",
    "\\pm",
    "\\mp",
    "\\approx",
    "\\sim",
    "\\cap",
}
_UNITISH = ("\\text", "\\mbox", "\\mathrm", "\\circ", "%", "\\$", "_", "'", "\\emptyset")
_ALLOWED_COMMANDS = {"\\frac", "\\sqrt", "\\pi", "\\cdot", "\\times"}


def _depth0_comma(s: str) -> bool:
    depth = 0
    for ch in s:
        if ch in "({[":
            depth += 1
        elif ch in ")}]":
            depth -= 1
        elif ch == "," and depth <= 1:
            return True
    return False


def answer_shape(latex: str) -> str | None:
    """A coarse type of a normalised answer, where a constant can never equal it.

    ``"constant"`` (evaluates here), ``"word"`` (``\\text{even}``, ``\\text{(C)}``), ``"tuple"`` (a bracketed or comma-separated list of
    several items, or a matrix), ``"set"`` (a union), ``"expression"`` (plain arithmetic over single-letter
    variables, no functions). ``None`` for everything else: equations, units, text,
    degrees, percent, bases, functions such as ``\\sin`` whose value may be a constant.
    """
    if closed_form_value(latex) is not None:
        return "constant"
    if _WORD.fullmatch(latex):
        return "word"
    commands = set(re.findall(r"\\[a-zA-Z]+", latex))
    if (
        any(r in latex for r in (*_RELATION_CHARS, *_UNITISH))
        or commands & _RELATION_COMMANDS
        or _THOUSANDS.match(latex)
    ):
        return None
    if latex.startswith(("\\begin{pmatrix}", "\\begin{bmatrix}")):
        return "tuple"
    if "\\cup" in commands:
        return "set"  # a union of intervals or sets: may equal a single interval, never a constant
    if "," in latex:
        bracketed = latex[:1] in "([" and latex[-1:] in ")]"
        return "tuple" if (bracketed or not commands) and _depth0_comma(latex) else None
    if commands - _ALLOWED_COMMANDS:
        return None
    letters = set(re.findall(r"[a-zA-Z]", re.sub(r"\\[a-zA-Z]+", "", latex)))
    if letters and not letters & {"e", "i", "E", "I"} and re.fullmatch(r"[0-9a-zA-Z+\-*/^().{}\\]+", latex):
        return "expression"
    return None


def degrees_value(latex: str) -> complex | None:
    """The number of an angle in degrees (``90^\\circ``), or ``None``."""
    m = _DEGREES.match(latex)
    return closed_form_value(m.group(1)) if m else None


def tuple_length(latex: str) -> int:
    """Number of items of a tuple/interval (top-level commas) or rows of a column matrix."""
    if latex.startswith(("\\begin{pmatrix}", "\\begin{bmatrix}")):
        body = re.sub(r"\\(?:begin|end)\{[pb]matrix\}", "", latex)
        return len([part for part in re.split(r"\\\\|\\(?=-|\d)", body) if part])
    depth = 0
    count = 1
    for ch in latex:
        if ch in "({[":
            depth += 1
        elif ch in ")}]":
            depth -= 1
        elif ch == "," and depth <= 1:
            count += 1
    return count


# Pairs of shapes that can never be equal answers. A union and a tuple can (``(1,2]\\cup[2,3)``
# is the interval ``(1,3)``), and two of one shape need a real comparison.
NEVER_EQUAL: frozenset[frozenset[str]] = frozenset(
    frozenset(pair)
    for pair in (
        ("constant", "word"),
        ("constant", "tuple"),
        ("constant", "expression"),
        ("constant", "set"),
        ("word", "tuple"),
        ("word", "expression"),
        ("word", "set"),
        ("tuple", "expression"),
        ("set", "expression"),
    )
)
