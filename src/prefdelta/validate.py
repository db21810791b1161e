"""Pure validators of user rows: every reader of a user's file checks its values here.

Why one module: an import that accepts a corrupt value does its damage later and far
away — a score of ``inf`` gives a pair ``delta_aggregate = inf``, which then heads every
top selection; a duplicate trace id silently doubles a trace's weight. Each reader
(``prefdelta pairs import``, the custom problem source, the GSM8K model solutions)
passes its rows through these functions, so the same value is refused the same way
everywhere, and the refusal is one :class:`~prefdelta.errors.UserError` line naming the
file, the line (or row) and the field.

The functions take ``where`` — the location prefix of the row, as
:attr:`prefdelta.sources.base.Record.where` gives it (``"data.jsonl: line 3"``) — and
never read files themselves.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Hashable, Iterable, Sequence
from numbers import Real
from typing import TYPE_CHECKING, Any

from prefdelta.errors import UserError

if TYPE_CHECKING:
    from prefdelta.sources.base import Record


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _number_problem(value: Any) -> str | None:
    """Why ``value`` is not a finite real number (``None`` when it is one)."""
    if isinstance(value, bool) or not isinstance(value, Real):
        return f"got {type(value).__name__} {_shown(value)}"
    if math.isnan(float(value)):
        return "got NaN"
    if math.isinf(float(value)):
        return f"got {'-' if float(value) < 0 else ''}inf"
    return None


def score(value: Any, where: str, field: str, low: float, high: float) -> float | None:
    """A judged score on the rubric's scale ``low``–``high``; ``None`` (not scored) stays ``None``.

    NaN, ±inf, strings, booleans and values off the scale are refused: a missing score
    is written as ``null``, never as NaN, so that a typo cannot pass as "not scored".
    """
    if value is None:
        return None
    problem = _number_problem(value)
    if problem is None and not low <= float(value) <= high:
        problem = f"got {_shown(value)}, outside the scale"
    if problem is not None:
        raise UserError(
            f"{where}: field '{field}' should be a number from {low:g} to {high:g} (the rubric's scale) "
            f"or null, {problem}"
        )
    return float(value)


def outcome(value: Any, where: str, field: str = "outcome") -> bool:
    """Correctness: ``true``/``false`` (or 1/0); anything else is refused."""
    if isinstance(value, bool):
        return value
    if isinstance(value, Real) and not isinstance(value, bool) and float(value) in (0.0, 1.0):
        return bool(value)
    raise UserError(f"{where}: field '{field}' should be true or false, got {_shown(value)}")


def text(value: Any, where: str, field: str) -> str:
    """A non-empty string (a prompt, a trace text): not null, NaN, a number or blank."""
    if not isinstance(value, str):
        got = "null" if value is None else f"{type(value).__name__} {_shown(value)}"
        raise UserError(f"{where}: field '{field}' should be a non-empty string, got {got}")
    if not value.strip():
        raise UserError(f"{where}: field '{field}' is empty (expected a non-empty string)")
    return value


def answer(value: Any, where: str, field: str) -> str:
    """A reference answer as text: a non-empty string or a finite number."""
    if isinstance(value, str):
        return text(value, where, field)
    problem = _number_problem(value)
    if value is None or problem is not None:
        got = "null" if value is None else problem
        raise UserError(f"{where}: field '{field}' should be a non-empty string or a finite number, {got}")
    return str(value)


def identifier(value: Any, where: str, field: str) -> str:
    """An id: a non-empty string, or an integer (kept as its decimal text)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return text(value, where, field)


def unique(keys: Iterable[tuple[Hashable, str]], field: str, what: str) -> None:
    """Refuse the first key seen twice; ``keys`` are ``(key, where)`` in file order.

    The message names the second occurrence and the line of the first.
    """
    first: dict[Hashable, str] = {}
    for key, where in keys:
        if key in first:
            line = first[key].rsplit(": ", 1)[-1]
            raise UserError(f"{where}: field '{field}': duplicate {what} {_shown(key)} (first at {line})")
        first[key] = where


def reference(value: Hashable, known: Collection[Hashable], where: str, field: str, target: str) -> None:
    """Refuse an id that names no row of ``target`` (e.g. a judgment of an unknown trace)."""
    if value not in known:
        raise UserError(f"{where}: field '{field}' = {_shown(value)} matches no row of the {target}")


# ---- the tables a user imports (rows as Records: ``.data`` and ``.where``) -------------------


def _field(rec: Record, field: str) -> Any:
    """The value of ``field`` (``None`` for null); a row without the field at all is refused."""
    if field not in rec.data:
        have = ", ".join(sorted(rec.data)) or "none"
        raise UserError(f"{rec.where}: missing field '{field}' (fields present: {have})")
    return rec.data[field]


def trace_rows(records: Sequence[Record]) -> None:
    """Imported traces: ids, problem and generator named, a non-empty text, no id twice."""
    for rec in records:
        for f in ("trace_id", "problem_id", "generator_id"):
            rec.data[f] = identifier(_field(rec, f), rec.where, f)
        text(_field(rec, "text"), rec.where, "text")
        if rec.data.get("is_correct") is not None:
            outcome(rec.data["is_correct"], rec.where, "is_correct")
    unique(((r.data["trace_id"], r.where) for r in records), "trace_id", "trace id")


def judgment_rows(
    records: Sequence[Record],
    dimensions: Sequence[str],
    scale: tuple[float, float],
    trace_ids: Collection[Hashable],
) -> None:
    """Imported judgments: a known trace, an outcome, scores on the scale or null, one per key.

    The key is (trace, judge, repeat): a second judgment of the same repeat would be
    averaged in as if it were another repeat.
    """
    low, high = scale
    for rec in records:
        tid = identifier(_field(rec, "trace_id"), rec.where, "trace_id")
        rec.data["trace_id"] = tid
        reference(tid, trace_ids, rec.where, "trace_id", "traces")
        outcome(_field(rec, "outcome"), rec.where, "outcome")
        for d in dimensions:
            score(_field(rec, d), rec.where, d, low, high)
    one_per_repeat(records)


def problem_rows(records: Sequence[Record]) -> None:
    """Imported problems: an id (each once), a non-empty prompt, a usable answer when given."""
    for rec in records:
        rec.data["problem_id"] = identifier(_field(rec, "problem_id"), rec.where, "problem_id")
        text(_field(rec, "prompt"), rec.where, "prompt")
        if "reference_answer" in rec.data:
            answer(rec.data["reference_answer"], rec.where, "reference_answer")
    unique(((r.data["problem_id"], r.where) for r in records), "problem_id", "problem id")


def generator_rows(records: Sequence[Record]) -> None:
    """Imported generators: each id once, a finite capability and parameter count when given."""
    for rec in records:
        rec.data["generator_id"] = identifier(_field(rec, "generator_id"), rec.where, "generator_id")
        for f in ("capability", "params"):
            value = rec.data.get(f)
            if value is not None and (problem := _number_problem(value)) is not None:
                raise UserError(f"{rec.where}: field '{f}' should be a finite number or null, {problem}")
    unique(((r.data["generator_id"], r.where) for r in records), "generator_id", "generator id")


# ---- the files a judge audit reads (``prefdelta judge audit --judgments/--reference/…``) ---------


def repeat_number(value: Any, where: str) -> int:
    """A repeat index: a whole number >= 0 (``None``, a missing repeat, counts as 0)."""
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise UserError(f"{where}: field 'repeat' should be a whole number >= 0, got {_shown(value)}")
    return value


def reference_rows(
    records: Sequence[Record],
    scores: Sequence[str],
    scale: tuple[float, float],
    outcomes: Sequence[str] = (),
) -> None:
    """Rows a judge audit compares per trace: a trace id, ``scores`` on the scale, ``outcomes`` true/false.

    Every named column must be present (a typo in ``--reference-column`` is not "no
    label"); a value may be null (not labelled), never NaN or off the scale. A trace may
    appear more than once (several labellers): the audit averages them.
    """
    low, high = scale
    for rec in records:
        rec.data["trace_id"] = identifier(_field(rec, "trace_id"), rec.where, "trace_id")
        for col in scores:
            score(_field(rec, col), rec.where, col, low, high)
        for col in outcomes:
            if _field(rec, col) is not None:
                outcome(rec.data[col], rec.where, col)


def audit_judgment_rows(
    records: Sequence[Record],
    dimensions: Sequence[str],
    scale: tuple[float, float],
    outcomes: Sequence[str] = (),
) -> None:
    """Judgments a judge audit reads from a file: :func:`reference_rows` plus one row per
    (trace, judge, repeat) — a second row of the same repeat would count as agreement
    between repeats that never happened."""
    reference_rows(records, dimensions, scale, outcomes)
    one_per_repeat(records)


def one_per_repeat(records: Sequence[Record]) -> None:
    """A valid ``repeat`` and ``judge_id`` on each row, and one row per (trace, judge, repeat)."""
    for rec in records:
        repeat_number(rec.data.get("repeat"), rec.where)
        if rec.data.get("judge_id") is not None:
            identifier(rec.data["judge_id"], rec.where, "judge_id")
    keys = (
        ((r.data["trace_id"], str(r.data.get("judge_id") or ""), r.data.get("repeat") or 0), r.where)
        for r in records
    )
    unique(keys, "repeat", "judgment of (trace, judge, repeat)")


def length_rows(records: Sequence[Record]) -> None:
    """Trace lengths: each trace once, with ``n_tokens`` (a finite number >= 0) or a ``text``."""
    for rec in records:
        rec.data["trace_id"] = identifier(_field(rec, "trace_id"), rec.where, "trace_id")
        if "n_tokens" in rec.data:
            n = rec.data["n_tokens"]
            problem = _number_problem(n)
            if problem is None and float(n) < 0:
                problem = f"got {_shown(n)}"
            if problem is not None:
                raise UserError(f"{rec.where}: field 'n_tokens' should be a finite number >= 0, {problem}")
        elif "text" in rec.data:
            text(rec.data["text"], rec.where, "text")
        else:
            have = ", ".join(sorted(rec.data)) or "none"
            raise UserError(f"{rec.where}: missing field 'n_tokens' or 'text' (fields present: {have})")
    unique(((r.data["trace_id"], r.where) for r in records), "trace_id", "trace id")


PAIR_ORDERS = ("ab", "ba")


def pairwise_rows(records: Sequence[Record], dimensions: Sequence[str]) -> None:
    """Pairwise judgments: a pair id, an order (``ab``/``ba``), a repeat, ``prefers_a_<dim>``
    from 0 to 1 or null; one row per (pair, order, repeat)."""
    for rec in records:
        rec.data["pair_id"] = identifier(_field(rec, "pair_id"), rec.where, "pair_id")
        order = _field(rec, "order")
        if order not in PAIR_ORDERS:
            raise UserError(f"{rec.where}: field 'order' should be 'ab' or 'ba', got {_shown(order)}")
        repeat_number(rec.data.get("repeat"), rec.where)
        for d in dimensions:
            col = f"prefers_a_{d}"
            value = _field(rec, col)
            problem = None if value is None else _number_problem(value)
            if problem is None and value is not None and not 0 <= float(value) <= 1:
                problem = f"got {_shown(value)}"
            if problem is not None:
                raise UserError(
                    f"{rec.where}: field '{col}' should be a number from 0 to 1 (1: solution a is better) "
                    f"or null, {problem}"
                )
    keys = ((r.data["pair_id"], r.data["order"], r.data.get("repeat") or 0) for r in records)
    unique(zip(keys, (r.where for r in records), strict=True), "repeat", "judgment of (pair, order, repeat)")
