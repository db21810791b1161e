"""Stage: pairs / select."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from prefdelta import pairs as pairs_mod
from prefdelta import select as select_mod
from prefdelta.config import StudyConfig
from prefdelta.study.stages.base import StageResult, run_stage
from prefdelta.workspace import Workspace, code_version


def stage_pairs(ws: Workspace, cfg: StudyConfig, force: bool = False) -> StageResult:
    """Build cross-generator pairs with generator- and sample-level deltas; write ``pairs``."""
    pc = cfg.pairs

    def body() -> tuple[list[str], list[Path], str]:
        traces = ws.read_table("traces", required_by="pairs")
        scores = pairs_mod.trace_scores(ws.read_table("judgments", required_by="pairs"))
        gens = ws.read_table("generators", required_by="pairs")
        df = pairs_mod.cross_generator_pairs(
            traces,
            scores,
            gens,
            chosen=pc.chosen,
            rejected=pc.rejected,
            min_gap=pc.min_gap,
            per_problem=pc.per_problem,
            seed=pc.seed,
            weights=pc.weights,
        )
        ws.write_table("pairs", df)
        return ["pairs"], [], f"({len(df)} pairs)"

    return run_stage(
        ws,
        "pairs",
        ["traces", "judgments", "generators"],
        pc.model_dump(),
        code_version(pairs_mod),
        body,
        force,
    )


def stage_select(ws: Workspace, cfg: StudyConfig, force: bool = False) -> StageResult:
    """Top fraction by the key, a random subset of the same size, and all pairs."""
    sc = cfg.select

    def body() -> tuple[list[str], list[Path], str]:
        pairs = ws.read_table("pairs", required_by="select")
        df = pd.concat(
            [
                select_mod.select_top(pairs, sc.key, sc.fraction),
                select_mod.select_random(pairs, sc.fraction, sc.seed, key=sc.key),
                select_mod.select_all(pairs),
            ],
            ignore_index=True,
        )
        ws.write_table("selections", df)
        return ["selections"], [], f"({df['selection_id'].nunique()} selections)"

    return run_stage(ws, "select", ["pairs"], sc.model_dump(), code_version(select_mod), body, force)
