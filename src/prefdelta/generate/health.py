"""Is the generate stage's output whole, and is each generator's share good enough?

A sample whose request still failed after the backend's retries (a server that timed
out, an HTTP 500, a body cut short) has no row in ``traces``; its latest failure is in
``generation_errors``. Two questions the stage asks of those rows:

- :func:`generation_gaps` — samples without a trace. The stage is then *incomplete*, not
  "up to date" (``Stage.incomplete``): a plain re-run asks the backend for exactly those
  (problem, sample) items, with the same seeds, and leaves every written trace alone; the
  stages after it then re-run on the whole ``traces``.
- :func:`error_rate_problem` — a generator whose failed share exceeds
  ``generate.max_error_rate`` (or its own ``max_error_rate``) fails the stage loudly,
  instead of handing a handful of traces to the judge as if they were the study.
"""

from __future__ import annotations

import pandas as pd

from prefdelta.generate.runner import ERRORS, TRACES
from prefdelta.study.health import error_share_problem
from prefdelta.workspace import Workspace


def _column(ws: Workspace, table: str, columns: list[str]) -> pd.DataFrame:
    """``columns`` of every shard of ``table`` (no text read), empty when there is none."""
    frames = [pd.read_parquet(ws.shard_path(table, s), columns=columns) for s in ws.shards(table)]
    frames = [f for f in frames if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)


def generation_gaps(ws: Workspace) -> str | None:
    """``"weak: 3 of 16 traces missing after generation errors"`` per generator with
    samples that have no trace, or ``None`` when every requested sample has one."""
    errors = _column(ws, ERRORS, ["generator_id"])
    if errors.empty:
        return None
    done = _column(ws, TRACES, ["generator_id"])["generator_id"].value_counts()
    missing = errors["generator_id"].value_counts().sort_index()
    return "; ".join(
        f"{gen}: {n} of {n + int(done.get(gen, 0))} traces missing after generation errors"
        for gen, n in missing.items()
    )


def error_rate_problem(
    errors: pd.Series, n_traces: int, generator_id: str, max_rate: float, field: str
) -> str | None:
    """Why ``generator_id``'s samples are not good enough, or ``None``.

    ``errors``: the reasons of its samples without a trace; ``n_traces``: those with one.
    One line: the generator, the failed share, and its three most common reasons.
    """
    n = n_traces + len(errors)
    return error_share_problem(errors, n, f"generator {generator_id}", "samples", max_rate, field)
