"""The offline arith world as a problem source: seeded word problems with their graph.

``options``: ``n`` problems drawn with ``seed`` from an :class:`~prefdelta.worlds.arith.ArithSpec`
(``spec``, a mapping of its knobs). The split is only a label, used in the problem ids
(``<split>-<seed>-<index>``), so two suites of one world never share ids. ``meta`` holds
the hidden computation graph, which the oracle judge reads back.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from prefdelta.sources.base import problems_frame

SOURCE = "arith"


def load(
    split: str = "test",
    data_dir: str | Path | None = None,
    *,
    n: int = 100,
    seed: int = 0,
    spec: dict[str, Any] | None = None,
) -> pd.DataFrame:
    """``n`` problems of the arith world; the same (spec, n, seed, split) gives the same rows."""
    from prefdelta.worlds import arith

    world = arith.ArithSpec.model_validate(spec or {})
    rows = [
        {
            "problem_id": p.problem_id,
            "source": SOURCE,
            "split": split,
            "prompt": arith.prompt_text(p.text),
            "reference_answer": str(p.answer),
            "reference_solution": arith.reference_trace(p),
            "meta": json.dumps(p.to_meta()),
        }
        for p in arith.make_problems(world, n, seed, prefix=split)
    ]
    return problems_frame(rows)
