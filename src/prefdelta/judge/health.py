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

import pandas as pd

from prefdelta.judge.llm import is_transport_error
from prefdelta.study.health import error_share_problem


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


def error_rate_problem(
    judged: pd.DataFrame, judge_id: str, max_rate: float, field: str = "judge.max_error_rate"
) -> str | None:
    """Why ``judge_id``'s rows are not good enough (share of errors above ``max_rate``, the
    setting ``field``), or ``None``.

    One line: the judge, the share, and its three most common error reasons with counts
    (:func:`prefdelta.study.health.error_share_problem`).
    """
    return error_share_problem(
        judged["error"], len(judged), f"judge {judge_id}", "judgments", max_rate, field
    )
