"""Competition problems with numeric answers (AIME, AMC): shared reader."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from prefdelta.sources.base import (
    HubCopy,
    check_split,
    format_number,
    open_records,
    problem_row,
    problems_frame,
)


def load_competition(
    source: str, split: str, data_dir: str | Path | None, hub: HubCopy | None = None
) -> pd.DataFrame:
    """``problems`` rows of ``<source>/test.jsonl`` (``problem``, ``answer``, optional ``solution``)."""
    check_split(source, split)
    rows = [
        problem_row(
            source,
            split,
            i,
            r.get("problem", str),
            format_number(r.get("answer", (str, int, float))),
            str(r.optional("solution", "")),
            native_id=r.optional("id"),
            url=r.optional("url"),
        )
        for i, r in enumerate(open_records(data_dir, f"{source}/test.jsonl", hub, source))
    ]
    return problems_frame(rows)
