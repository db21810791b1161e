"""Is a judge's output whole, and is it good enough to build on?

Two questions the judge stage asks of the rows it wrote:

- :func:`transport_gaps` — rows that no reply stands behind (a transport fault after
  the backend's own retries). The stage is then *incomplete*, not "up to date": a plain
  re-run re-sends exactly those requests, every other reply coming from the cache.
- :func:`error_rate_problem` — a judge whose error rows (transport faults and
  unparseable replies alike) exceed ``judge.max_error_rate`` fails the stage loudly,
  instead of handing a handful of scores to the pairs stage as if they were the study.
"""

from __future__ import annotations

from collections import Counter

import pandas as pd

from prefdelta.judge.llm import is_transport_error

REASON_CHARS = 100
"""Reasons are quoted up to this length (an HTML error page or a long reply stays one line)."""


def transport_gaps(judgments: pd.DataFrame) -> str | None:
    """``"llm:m: 3 of 48 judgments missing after transport errors"`` per judge with gaps, or ``None``."""
    if judgments.empty or "error" not in judgments:
        return None
    gaps = is_transport_error(judgments["error"])
    if not gaps.any():
        return None
    missing = judgments.loc[gaps, "judge_id"].value_counts().sort_index()
    totals = judgments["judge_id"].value_counts()
    return "; ".join(
        f"{judge_id}: {n} of {totals[judge_id]} judgments missing after transport errors"
        for judge_id, n in missing.items()
    )


def _reason(error: str) -> str:
    line = " ".join(str(error).split())
    return line if len(line) <= REASON_CHARS else line[: REASON_CHARS - 1] + "…"


def error_rate_problem(
    judged: pd.DataFrame, judge_id: str, max_rate: float, field: str = "judge.max_error_rate"
) -> str | None:
    """Why ``judge_id``'s rows are not good enough (share of errors above ``max_rate``, the
    setting ``field``), or ``None``.

    One line: the judge, the share, and its three most common error reasons with counts.
    """
    n = len(judged)
    if n == 0:
        return None
    errors = judged["error"].dropna()
    share = len(errors) / n
    if share <= max_rate:
        return None
    common = Counter(_reason(e) for e in errors).most_common(3)
    reasons = "; ".join(f"{count}× {reason!r}" for reason, count in common)
    return (
        f"judge {judge_id}: {share:.0%} of its {n} judgments are errors ({len(errors)}), above "
        f"{field} {max_rate:g}; most common: {reasons}"
    )
