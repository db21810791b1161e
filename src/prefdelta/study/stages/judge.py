"""Stage: judge."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from prefdelta.config import StudyConfig
from prefdelta.errors import UserError
from prefdelta.judge import oracle
from prefdelta.progress import bar
from prefdelta.study.stages.base import StageResult, problems_of, run_stage
from prefdelta.workspace import Workspace, code_version


def stage_judge(ws: Workspace, cfg: StudyConfig, force: bool = False) -> StageResult:
    """Score every trace with the exact arith oracle; write ``judgments``."""

    def body() -> tuple[list[str], list[Path], str]:
        problems = problems_of(ws.read_table("problems", required_by="judge"), "pairs")
        by_id = {p.problem_id: p for p in problems}
        traces = ws.read_table("traces", required_by="judge")
        rows = []
        with bar("judge: oracle", len(traces)) as advance:
            for tid, pid, text in zip(traces["trace_id"], traces["problem_id"], traces["text"], strict=True):
                if pid not in by_id:
                    raise UserError(
                        f"trace {tid} refers to problem {pid!r}, which is not in the problems table"
                    )
                scores = oracle.oracle_judge(by_id[pid], text)
                rows.append(
                    {
                        "trace_id": tid,
                        "judge_id": "arith-oracle",
                        "rubric_hash": "oracle",
                        "repeat": 0,
                        **scores,
                        "raw": "",
                        "error": None,
                    }
                )
                advance(1)
        df = pd.DataFrame(rows)
        df["error"] = df["error"].astype("string")
        ws.write_table("judgments", df)
        return ["judgments"], [], f"({len(df)} judgments)"

    return run_stage(
        ws, "judge", ["traces", "problems"], cfg.judge.model_dump(), code_version(oracle), body, force
    )
