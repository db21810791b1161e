"""Stage: pairs / select."""

from __future__ import annotations

from pathlib import Path

from prefdelta import pairs as pairs_mod
from prefdelta import select as select_mod
from prefdelta.config import StudyConfig
from prefdelta.study.stages.base import StageResult, run_stage
from prefdelta.workspace import Workspace, code_version


def stage_pairs(ws: Workspace, cfg: StudyConfig, force: bool = False) -> StageResult:
    """Build pairs (``pairs.strategy``) with generator- and sample-level deltas; write ``pairs``."""
    pc = cfg.pairs

    def body() -> tuple[list[str], list[Path], str]:
        traces = ws.read_table("traces", required_by="pairs")
        scores = pairs_mod.trace_scores(ws.read_table("judgments", required_by="pairs"))
        gens = ws.read_table("generators", required_by="pairs")
        df = pairs_mod.build_pairs(traces, scores, gens, pc)
        ws.write_table("pairs", df)
        flagged = int(df["flagged"].sum())
        return ["pairs"], [], f"({len(df)} {pc.strategy} pairs, {flagged} flagged)"

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
    """Top fraction by the key, a random subset of the same size, all pairs (and bottom)."""
    sc = cfg.select

    def body() -> tuple[list[str], list[Path], str]:
        pairs = ws.read_table("pairs", required_by="select")
        df = select_mod.selections_for(pairs, sc)
        ws.write_table("selections", df)
        sizes = df.groupby("strategy", sort=False).size()
        return ["selections"], [], "(" + ", ".join(f"{s}: {n}" for s, n in sizes.items()) + ")"

    return run_stage(ws, "select", ["pairs"], sc.model_dump(), code_version(select_mod), body, force)
