"""Is a stage's share of error rows small enough to build on?

Shared by the stages whose rows come from a model that can fail (generate: samples with
no trace; judge: judgments with no score). A stage whose error rows exceed its
``max_error_rate`` fails loudly (exit 2) after writing the rows it has, instead of
handing a handful of results to the next stage as if they were the study.
"""

from __future__ import annotations

from collections import Counter

import pandas as pd

REASON_CHARS = 100
"""Reasons are quoted up to this length (an HTML error page or a long reply stays one line)."""


def reason(error: object) -> str:
    """``error`` on one line, cut to :data:`REASON_CHARS`."""
    line = " ".join(str(error).split())
    return line if len(line) <= REASON_CHARS else line[: REASON_CHARS - 1] + "…"


def error_share_problem(
    errors: pd.Series, n: int, who: str, rows: str, max_rate: float, field: str
) -> str | None:
    """Why ``who``'s ``n`` rows are not good enough, or ``None``.

    ``errors``: the error reasons of its failed rows (``len(errors) / n`` is the share);
    ``rows``: what a row is (``"judgments"``, ``"samples"``); ``field``: the setting that
    holds ``max_rate``. One line: who, the share, and the three most common reasons with
    their counts.
    """
    errors = errors.dropna()
    if n == 0:
        return None
    share = len(errors) / n
    if share <= max_rate:
        return None
    common = Counter(reason(e) for e in errors).most_common(3)
    reasons = "; ".join(f"{count}× {text!r}" for text, count in common)
    return (
        f"{who}: {share:.0%} of its {n} {rows} are errors ({len(errors)}), above "
        f"{field} {max_rate:g}; most common: {reasons}"
    )
