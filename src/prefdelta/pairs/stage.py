"""Stage: pairs — preference pairs with generator-level and sample-level deltas.

Reads the traces, the judgments of the judge named for the deltas (``judge.deltas_from``,
by default the first judge) and the generators' capabilities; writes ``pairs``
(:func:`prefdelta.pairs.build.build_pairs`, strategy by ``pairs.strategy``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from prefdelta.errors import UserError
from prefdelta.pairs import build
from prefdelta.study.stage import Estimate, Stage, StageContext, StageOutput
from prefdelta.workspace import Workspace

if TYPE_CHECKING:
    from prefdelta.study.spec import StudyConfig


def delta_judgments(ws: Workspace, cfg: StudyConfig):  # -> pd.DataFrame
    """The judgments the deltas come from: ``judge.deltas_from`` when set; else the only
    judge in the table (e.g. imported judgments); else the spec's first judge."""
    judgments = ws.read_table("judgments", required_by="pairs")
    ids = sorted(judgments["judge_id"].dropna().astype(str).unique()) if "judge_id" in judgments else []
    if cfg.judge.deltas_from is None and len(ids) <= 1:
        return judgments
    judge_id = cfg.judge.delta_judge
    if judge_id not in ids:
        raise UserError(
            f"judge.deltas_from: no judgments of {judge_id!r} in the workspace "
            f"(have: {', '.join(ids) or 'none'}); run the judge stage or name one of these"
        )
    return judgments[judgments["judge_id"] == judge_id]


def body(ws: Workspace, cfg: StudyConfig, ctx: StageContext) -> StageOutput:
    pc = cfg.pairs
    traces = ws.read_table("traces", required_by="pairs")
    scores = build.trace_scores(delta_judgments(ws, cfg))
    gens = ws.read_table("generators", required_by="pairs")
    df = build.build_pairs(traces, scores, gens, pc)
    ws.write_table("pairs", df)
    flagged = int(df["flagged"].sum())
    return StageOutput(["pairs"], [], f"({len(df)} {pc.strategy} pairs, {flagged} flagged)")


def estimate(ws: Workspace, cfg: StudyConfig) -> Estimate:
    return Estimate(note=f"{cfg.pairs.strategy}, per problem {cfg.pairs.per_problem}")


def _settings(cfg: StudyConfig) -> dict[str, object]:
    return {"pairs": cfg.pairs.model_dump(mode="json"), "deltas_from": cfg.judge.delta_judge}


STAGE = Stage(
    name="pairs",
    inputs=("traces", "judgments", "generators"),
    outputs=("pairs",),
    sections=("pairs",),
    body=body,
    help="Build preference pairs with generator-level and sample-level deltas.",
    estimate=estimate,
    settings=_settings,
)
