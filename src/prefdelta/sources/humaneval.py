"""HumanEval (Chen et al. 2021, "Evaluating Large Language Models Trained on Code"):
164 Python functions to complete, each checked by unit tests — the out-of-domain code
benchmark. Read from the gzip'd JSONL as published."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from prefdelta.sources.base import HubCopy, check_split, open_records, problem_row, problems_frame

SOURCE = "humaneval"
HUB = HubCopy("openai/openai_humaneval", "test")


def load(split: str = "test", data_dir: str | Path | None = None) -> pd.DataFrame:
    """``problems`` rows: ``prompt`` is the signature and docstring, ``reference_answer`` is
    empty (correctness is decided by running ``meta.test``), ``reference_solution`` the
    canonical body; ``meta`` holds ``task_id``, ``entry_point`` and ``test``."""
    check_split(SOURCE, split)
    rows = [
        problem_row(
            SOURCE,
            split,
            i,
            r.get("prompt", str),
            "",
            r.get("canonical_solution", str),
            task_id=r.get("task_id", str),
            entry_point=r.get("entry_point", str),
            test=r.get("test", str),
        )
        for i, r in enumerate(open_records(data_dir, "humaneval/HumanEval.jsonl.gz", HUB, SOURCE))
    ]
    return problems_frame(rows)
