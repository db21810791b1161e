"""Outcome grading: is a trace's final answer equal to the reference answer?

Three answer formats:

- ``gsm8k`` — the number after ``#### `` (GSM8K's format), or a last ``A: N`` /
  ``Answer: N`` line (the format of GSM8K's released model solutions), or "the answer
  is N"; compared as exact fractions, so ``1,000`` = ``1000.0`` = ``$1000``.
- ``boxed`` — the content of the last ``\\boxed{}`` (MATH, MATH-500, AIME, AMC, Minerva).
  A fast path decides first: *correct* when the strings are equal after LaTeX
  normalisation or two plain numbers are exactly equal; *incorrect* when two numbers
  or closed-form constants (``3\\sqrt{13}``, ``\\frac{\\pi}{6}``, ``6-5i``; see
  :mod:`prefdelta.judge.closed_form`) are clearly apart, when an angle in degrees is
  neither the constant's degrees nor its radians, or when the two answers have
  different shapes (a constant against a word, a tuple or a polynomial; tuples of
  different lengths). Everything else goes to math-verify (Hugging Face, 2025), which
  parses both sides into sympy and checks equivalence. The fast path only answers where
  math-verify gives the same verdict — ``bench/bench_grading.py`` checks this item for
  item on 5,000 real GSM8K and MATH-500 items — and is several times faster because
  sympy parsing dominates the cost.
- ``choice`` — a multiple-choice letter (``(B)``, ``Answer: B``, ``\\boxed{B}``); the
  reference may be a letter or a 0-based index.

math-verify enforces its timeouts with ``signal.alarm``, which only works in a main
thread, so :func:`grade_many` parallelises across *processes*; every item has its own
timeout (``timeout_s``, typically 2–10 s) and a timed-out item is graded incorrect with
method ``timeout`` rather than stalling the batch.
"""

from __future__ import annotations

import math
import os
import re
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

from prefdelta.errors import MissingDependency, UserError
from prefdelta.judge.closed_form import (
    NEVER_EQUAL,
    answer_shape,
    closed_form_value,
    degrees_value,
    tuple_length,
)

Kind = Literal["arith", "gsm8k", "boxed", "choice"]
KINDS: tuple[str, ...] = ("arith", "gsm8k", "boxed", "choice")


@dataclass(frozen=True)
class Verdict:
    """The grade of one prediction.

    ``method`` says how it was decided: ``exact`` (normalised strings equal),
    ``numeric`` (numbers compared exactly, or constants clearly apart), ``shape`` (a
    constant against a tuple or a polynomial), ``symbolic`` (math-verify), ``no_answer``
    (nothing could be extracted from the prediction), ``timeout`` or ``error``.
    """

    correct: bool
    predicted: str | None
    method: str
    detail: str = ""


# ---- number handling ---------------------------------------------------------------------
_NUM = re.compile(r"-?\d[\d,]*(?:\.\d+)?|-?\.\d+")
_PLAIN_NUMBER = re.compile(r"^-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?$|^-?\.\d+$")


def to_number(text: str | None) -> Fraction | None:
    """The exact value of ``text`` when it is a plain number (``$1,000.50``, ``12.``, ``-3``)."""
    if text is None:
        return None
    s = text.strip().rstrip(".").strip()
    s = s.removeprefix("$").removesuffix("$").strip()
    if not _PLAIN_NUMBER.match(s):
        return None
    try:
        return Fraction(s.replace(",", ""))
    except (ValueError, ZeroDivisionError):
        return None


def first_number(text: str | None) -> Fraction | None:
    """The first number in ``text`` (``"$18 per day"`` → 18), for answers with units."""
    if not text:
        return None
    m = _NUM.search(text)
    if m is None:
        return None
    try:
        return Fraction(m.group(0).replace(",", "").rstrip("."))
    except (ValueError, ZeroDivisionError):
        return None


# ---- GSM8K ------------------------------------------------------------------------------
_HASHES = re.compile(r"####\s*(.+?)\s*$", re.MULTILINE)
_A_LINE = re.compile(r"^\s*(?:A|Answer|Final answer)\s*:\s*(.+?)\s*$", re.MULTILINE | re.IGNORECASE)
_ANSWER_IS = re.compile(r"answer is[:\s]*\$?\s*(-?[\d,]*\.?\d+)", re.IGNORECASE)


def extract_gsm8k(text: str, last_number_fallback: bool = False) -> str | None:
    """The final answer of a GSM8K-style trace, or ``None``.

    Order: the last ``#### N``; the last ``A: N`` line; the last "the answer is N";
    with ``last_number_fallback`` the last number in the text (lm-eval's "flexible
    extract"; off by default because it credits traces that never commit to an answer).
    """
    for pattern in (_HASHES, _A_LINE, _ANSWER_IS):
        found = pattern.findall(text)
        if found:
            return found[-1].strip()
    if last_number_fallback:
        numbers = _NUM.findall(text)
        if numbers:
            return numbers[-1]
    return None


def gsm8k_reference(reference: str) -> str:
    """A GSM8K reference: a full solution ending in ``#### N`` or just the answer."""
    extracted = extract_gsm8k(reference)
    return extracted if extracted is not None else reference.strip()


def grade_gsm8k(prediction: str, reference: str, last_number_fallback: bool = False) -> Verdict:
    """Grade a GSM8K-style trace against a reference solution or answer (exact fractions)."""
    predicted = extract_gsm8k(prediction, last_number_fallback)
    if predicted is None:
        return Verdict(False, None, "no_answer")
    ref = gsm8k_reference(reference)
    ref_value = to_number(ref)
    if ref_value is None:
        ref_value = first_number(ref)
    if ref_value is None:
        raise UserError(f"GSM8K reference answer {ref!r} is not a number")
    value = to_number(predicted)
    if value is None:
        value = first_number(predicted)
    if value is None:
        return Verdict(False, predicted, "no_answer", "no number in the answer")
    return Verdict(value == ref_value, predicted, "numeric")


# ---- \boxed{} ---------------------------------------------------------------------------
_BOX = re.compile(r"\\(?:boxed|fbox)\s*\{")


def extract_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` (braces balanced), or ``None``."""
    starts = [m.end() for m in _BOX.finditer(text)]
    for start in reversed(starts):
        depth = 1
        for i in range(start, len(text)):
            ch = text[i]
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
                if depth == 0:
                    return text[start:i].strip()
    return None


_LATEX_NOISE = (
    ("\\left", ""),
    ("\\right", ""),
    ("\\!", ""),
    ("\\,", ""),
    ("\\;", ""),
    ("\\ ", ""),
    ("\\dfrac", "\\frac"),
    ("\\tfrac", "\\frac"),
    ("\\$", ""),
    ("$", ""),
)


def normalize_latex(answer: str) -> str:
    """Whitespace- and spacing-command-free form of a LaTeX answer, for the exact fast path.

    Deliberately conservative: only rewrites that never change the value, so equal
    normalised strings are equivalent answers.
    """
    s = answer.strip()
    for old, new in _LATEX_NOISE:
        s = s.replace(old, new)
    s = re.sub(r"\s+", "", s)
    return s.rstrip(".")


_SIMPLE_FRAC = re.compile(r"^(-?)\\frac\{(-?\d+)\}\{(\d+)\}$")
_SIMPLE_DEC = re.compile(r"^-?\d+(?:\.\d+)?$|^-?\.\d+$")


def simple_value(s: str) -> Fraction | None:
    """The exact value of a normalised answer that is an integer, a decimal or ``\\frac{a}{b}``."""
    if _SIMPLE_DEC.match(s):
        return Fraction(s)
    m = _SIMPLE_FRAC.match(s)
    if m and int(m.group(3)) != 0:
        value = Fraction(int(m.group(2)), int(m.group(3)))
        return -value if m.group(1) else value
    return None


# math-verify rounds floats to 6 decimals; only numbers farther apart than this are
# certainly unequal for it, closer ones go to math-verify.
_REL_GAP = 1e-4


def _math_verify(prediction: str, reference: str, timeout_s: int) -> bool:
    try:
        from math_verify import parse, verify
    except ImportError as err:  # pragma: no cover - dependency of the grading extra
        raise MissingDependency("math-verify", "grading", "symbolic answer grading") from err
    gold = parse(f"${reference}$", parsing_timeout=timeout_s)
    pred = parse(prediction, parsing_timeout=timeout_s)
    return bool(verify(gold, pred, timeout_seconds=timeout_s))


def fast_boxed(prediction: str, reference: str) -> Verdict | None:
    """The fast path for ``\\boxed{}`` answers, or ``None`` when only math-verify can decide."""
    boxed = extract_boxed(prediction)
    if boxed is None:
        return None  # math-verify may still find an unboxed final answer
    pred_n, ref_n = normalize_latex(boxed), normalize_latex(reference)
    if pred_n == ref_n and pred_n:
        return Verdict(True, boxed, "exact")
    a, b = simple_value(pred_n), simple_value(ref_n)
    if a is not None and b is not None:
        if a == b:
            return Verdict(True, boxed, "numeric")
        if abs(a - b) > _REL_GAP * max(1, abs(a), abs(b)):
            return Verdict(False, boxed, "numeric")
        return None
    # two closed-form constants clearly apart cannot be equal; equal ones need sympy to say so
    x, y = closed_form_value(pred_n), closed_form_value(ref_n)
    if x is not None and y is not None:
        if abs(x - y) > _REL_GAP * max(1.0, abs(x), abs(y)):
            return Verdict(False, boxed, "numeric")
        return None
    # an angle in degrees is unequal to a constant that is neither its degrees nor its radians
    for deg, other in ((degrees_value(pred_n), y), (degrees_value(ref_n), x)):
        if deg is not None and other is not None:
            far = all(abs(other - v) > _REL_GAP * max(1.0, abs(v)) for v in (deg, deg * math.pi / 180))
            return Verdict(False, boxed, "numeric") if far else None
    # some shapes never match (a constant and a tuple); see closed_form.NEVER_EQUAL
    a_shape, b_shape = answer_shape(pred_n), answer_shape(ref_n)
    if frozenset((a_shape, b_shape)) in NEVER_EQUAL:
        return Verdict(False, boxed, "shape")
    if a_shape == b_shape == "tuple" and tuple_length(pred_n) != tuple_length(ref_n):
        return Verdict(False, boxed, "shape")
    return None


def grade_boxed(prediction: str, reference: str, timeout_s: int = 5, fast: bool = True) -> Verdict:
    """Grade a ``\\boxed{}`` answer: fast exact / integer path, then math-verify."""
    if fast:
        verdict = fast_boxed(prediction, reference)
        if verdict is not None:
            return verdict
    boxed = extract_boxed(prediction)
    # math-verify gives the last box priority anyway; parsing only it skips the long prose.
    target = f"\\boxed{{{boxed}}}" if boxed is not None else prediction
    start = time.monotonic()
    try:
        ok = _math_verify(target, reference, timeout_s)
    except MissingDependency:
        raise
    except Exception as err:  # math-verify raises TimeoutException (an Exception) on timeouts
        method = "timeout" if "timed out" in str(err).lower() or "Timeout" in type(err).__name__ else "error"
        return Verdict(False, boxed, method, f"{type(err).__name__}: {err}"[:200])
    if not ok and time.monotonic() - start >= timeout_s:
        # math-verify swallows its own timeouts and answers False; say why
        return Verdict(False, boxed, "timeout", f"math-verify ran past {timeout_s}s")
    return Verdict(ok, boxed, "symbolic")


# ---- multiple choice --------------------------------------------------------------------
_CHOICE_PATTERNS = (
    re.compile(r"\\boxed\{\s*\(?([A-J])\)?\s*\}"),
    re.compile(r"answer\s*(?:is|:)?\s*[:\s]*\(?([A-J])\)?(?![A-Za-z])", re.IGNORECASE),
    re.compile(r"^\s*\(?([A-J])\)?\s*[.):]?\s*$", re.MULTILINE),
)


def extract_choice(text: str) -> str | None:
    """The chosen letter (A–J): ``\\boxed{B}``, "answer is (B)", "Answer: B", or a lone letter line."""
    for pattern in _CHOICE_PATTERNS:
        found = pattern.findall(text)
        if found:
            return found[-1].upper()
    return None


def choice_reference(reference: str | int) -> str:
    """A letter from a letter or a 0-based index (MMLU stores the index)."""
    if isinstance(reference, int) or (isinstance(reference, str) and reference.strip().isdigit()):
        index = int(reference)
        if not 0 <= index < 10:
            raise UserError(f"multiple-choice reference index {index} is outside 0-9")
        return "ABCDEFGHIJ"[index]
    letter = reference.strip().strip("()").upper()
    if len(letter) != 1 or letter not in "ABCDEFGHIJ":
        raise UserError(f"multiple-choice reference {reference!r} is not a letter A-J or an index")
    return letter


def grade_choice(prediction: str, reference: str | int) -> Verdict:
    """Grade a multiple-choice answer against a letter or 0-based index."""
    letter = extract_choice(prediction)
    if letter is None:
        return Verdict(False, None, "no_answer")
    return Verdict(letter == choice_reference(reference), letter, "exact")


# ---- the arith world ------------------------------------------------------------------------
def grade_arith(prediction: str, reference: str | int) -> Verdict:
    """The arith oracle's outcome: the value of the trace's ``####`` line equals the answer.

    Stricter than :func:`grade_gsm8k` on purpose: the world's traces have one format, and
    a trace without a parsable ``####`` line never reached an answer.
    """
    from prefdelta.judge.annotations import final_answer, parse_number

    answer = final_answer(prediction)
    value = parse_number(answer) if answer is not None else None
    if value is None:
        return Verdict(False, None, "no_answer")
    return Verdict(value == Fraction(str(reference).strip()), str(value), "exact")


# ---- one entry point, and many items in parallel ---------------------------------------------
def grade(kind: str, prediction: str, reference: str | int, timeout_s: int = 5) -> Verdict:
    """Grade one prediction. ``kind`` is ``arith``, ``gsm8k``, ``boxed`` or ``choice``."""
    if kind == "arith":
        return grade_arith(prediction, reference)
    if kind == "gsm8k":
        return grade_gsm8k(prediction, str(reference))
    if kind == "boxed":
        return grade_boxed(prediction, str(reference), timeout_s=timeout_s)
    if kind == "choice":
        return grade_choice(prediction, reference)
    raise UserError(f"unknown answer kind {kind!r}; expected one of {', '.join(KINDS)}")


def _fast(kind: str, prediction: str, reference: str | int) -> Verdict | None:
    if kind == "boxed":
        return fast_boxed(prediction, str(reference))
    return grade(kind, prediction, reference)


def _slow(args: tuple[str, str, int]) -> Verdict:
    prediction, reference, timeout_s = args
    return grade_boxed(prediction, reference, timeout_s=timeout_s, fast=False)


def grade_many(
    kinds: Sequence[str] | str,
    predictions: Sequence[str],
    references: Sequence[str | int],
    workers: int | None = None,
    timeout_s: int = 5,
    fast: bool = True,
) -> list[Verdict]:
    """Grade many items; the fast path runs here, math-verify in ``workers`` processes.

    ``workers`` 0 or 1 grades in this process (still with per-item timeouts, as long as
    this is the main thread); ``None`` uses the CPU count. Verdicts come back in order.
    """
    if len(predictions) != len(references):
        raise UserError(f"{len(predictions)} predictions but {len(references)} references")
    kinds = [kinds] * len(predictions) if isinstance(kinds, str) else list(kinds)
    for kind in set(kinds):
        if kind not in KINDS:
            raise UserError(f"unknown answer kind {kind!r}; expected one of {', '.join(KINDS)}")
    out: list[Verdict | None] = [None] * len(predictions)
    slow: list[int] = []
    for i, (kind, pred, ref) in enumerate(zip(kinds, predictions, references, strict=True)):
        verdict = _fast(kind, pred, ref) if fast or kind != "boxed" else None
        if verdict is None:
            slow.append(i)
        else:
            out[i] = verdict
    jobs = [(predictions[i], str(references[i]), timeout_s) for i in slow]
    n_workers = (os.cpu_count() or 1) if workers is None else workers
    if n_workers <= 1 or len(jobs) < 2:
        results = [_slow(job) for job in jobs]
    else:
        chunk = max(1, len(jobs) // (n_workers * 4))
        with ProcessPoolExecutor(max_workers=min(n_workers, len(jobs))) as pool:
            results = list(pool.map(_slow, jobs, chunksize=chunk))
    for i, verdict in zip(slow, results, strict=True):
        out[i] = verdict
    return [v for v in out if v is not None]
