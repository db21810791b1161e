"""Stage: select — the selections of pairs to train on (:mod:`prefdelta.select.strategies`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from prefdelta.select import strategies
from prefdelta.study.stage import Estimate, Stage, StageContext, StageOutput
from prefdelta.workspace import Workspace

if TYPE_CHECKING:
    from prefdelta.study.spec import StudyConfig


def body(ws: Workspace, cfg: StudyConfig, ctx: StageContext) -> StageOutput:
    pairs = ws.read_table("pairs", required_by="select")
    df = strategies.selections_for(pairs, cfg.select)
    ws.write_table("selections", df)
    sizes = df.groupby("strategy", sort=False).size()
    return StageOutput(["selections"], [], "(" + ", ".join(f"{s}: {n}" for s, n in sizes.items()) + ")")


def estimate(ws: Workspace, cfg: StudyConfig) -> Estimate:
    return Estimate(note=f"key {cfg.select.key}, fraction {cfg.select.fraction}")


STAGE = Stage(
    name="select",
    inputs=("pairs",),
    outputs=("selections",),
    sections=("select",),
    body=body,
    help="Select the pairs to train on (top / bottom / random by a delta, all, quadrants, generator pairs).",
    estimate=estimate,
)
