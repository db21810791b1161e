"""Shared machinery of the stages: cache keys, skip-when-fresh, timing."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from prefdelta.hashing import stable_hash
from prefdelta.progress import info
from prefdelta.workspace import Workspace, code_version
from prefdelta.worlds import arith


@dataclass(frozen=True)
class StageResult:
    stage: str
    skipped: bool
    seconds: float
    detail: str = ""


def run_stage(
    ws: Workspace,
    stage: str,
    inputs: list[str],
    config: object,
    version: str,
    body: Callable[[], tuple[list[str], list[Path], str]],
    force: bool = False,
) -> StageResult:
    # The stage's own module (where ``body`` is defined) is part of its code version too.
    stage_module = sys.modules.get(getattr(body, "__module__", ""), None)
    if stage_module is not None:
        version = stable_hash(version, code_version(stage_module))
    key = ws.stage_key(stage, inputs, config, version)
    if not force and ws.is_fresh(stage, key):
        info(f"[dim]{stage}: up to date, skipped[/dim]")
        return StageResult(stage, True, 0.0)
    start = time.perf_counter()
    tables, paths, detail = body()
    seconds = time.perf_counter() - start
    ws.mark_done(stage, key, tables=tables, paths=paths, seconds=seconds)
    info(f"{stage}: done in {seconds:.1f}s {detail}")
    return StageResult(stage, False, seconds, detail)


def problems_of(df: pd.DataFrame, split: str) -> list[arith.ArithProblem]:
    rows = df[df["split"] == split]
    return [
        arith.ArithProblem.from_meta(pid, text, json.loads(meta))
        for pid, text, meta in zip(rows["problem_id"], rows["problem_text"], rows["meta"], strict=True)
    ]
