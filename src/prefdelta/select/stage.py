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


def planned_strategies(cfg: StudyConfig) -> list[str]:
    """The strategies the select section will write, as far as the spec alone tells (a
    ladder without explicit rungs is assumed to climb to every other generator; the
    per-generator-pair selections are not counted)."""
    sc = cfg.select
    out: list[str] = []
    if sc.basic:
        out += ["top", "random", "all"] + (["bottom"] if sc.bottom else [])
    gens = [g.id for g in cfg.generators]
    for lad in sc.ladders:
        rungs = list(lad.rungs) or [g for g in gens if g != lad.generator]
        rungs = ([lad.generator] if lad.equal else []) + rungs
        for r in rungs:
            a, b = (r, lad.generator) if lad.fixed == "rejected" else (lad.generator, r)
            out.append(f"ladder:{lad.name}:{a}>{b}")
    for grid in sc.grids:
        out += [
            f"grid:{grid.name}:{s}:{k}:{f:g}"
            for k in grid.keys
            for f in grid.fractions
            for s in grid.strategies
        ]
        out += [f"grid:{grid.name}:all"] if grid.all else []
        out += [f"grid:{grid.name}:quadrant:{'+'.join(q)}" for q in grid.quadrants]
    return out


def estimate(ws: Workspace, cfg: StudyConfig) -> Estimate:
    return Estimate({"selections": len(planned_strategies(cfg))})


STAGE = Stage(
    name="select",
    inputs=("pairs",),
    outputs=("selections",),
    sections=("select",),
    body=body,
    help="Select the pairs to train on (top / bottom / random by a delta, all, quadrants, generator pairs).",
    estimate=estimate,
)
