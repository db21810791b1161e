"""Stage: problems."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from prefdelta.config import StudyConfig
from prefdelta.study.stages.base import StageResult, run_stage
from prefdelta.workspace import Workspace, code_version
from prefdelta.worlds import arith


def stage_problems(ws: Workspace, cfg: StudyConfig, force: bool = False) -> StageResult:
    """Write the ``problems`` table: zoo training set, pair problems and eval suites."""
    sets = {"zoo_train": cfg.world.train, "pairs": cfg.world.pairs}
    sets.update({s.name: s.problems for s in cfg.eval.suites})
    config = {k: v.model_dump() for k, v in sets.items()}

    def body() -> tuple[list[str], list[Path], str]:
        rows = []
        for split, ps in sets.items():
            for p in arith.make_problems(ps.spec, ps.n, ps.seed, prefix=split):
                rows.append(
                    {
                        "problem_id": p.problem_id,
                        "source": "arith",
                        "split": split,
                        "prompt": arith.prompt_text(p.text),
                        "problem_text": p.text,
                        "reference_answer": str(p.answer),
                        "reference_solution": arith.reference_trace(p),
                        "meta": json.dumps(p.to_meta()),
                    }
                )
        df = pd.DataFrame(rows)
        ws.write_table("problems", df)
        return ["problems"], [], f"({len(df)} problems)"

    return run_stage(ws, "problems", [], config, code_version(arith), body, force)
