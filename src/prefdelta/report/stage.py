"""Stage: report — the study's summary (``reports/summary.md``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from prefdelta.judge.dimensions import DIMENSIONS
from prefdelta.report import markdown
from prefdelta.study.stage import Estimate, Stage, StageContext, StageOutput
from prefdelta.workspace import Workspace, atomic_write_text

if TYPE_CHECKING:
    from prefdelta.study.spec import StudyConfig

INPUTS = ("generators", "pairs", "selections", "runs", "evals")


def body(ws: Workspace, cfg: StudyConfig, ctx: StageContext) -> StageOutput:
    tables = {t: ws.read_table(t, required_by="report") for t in INPUTS}
    extra = {
        t: ws.read_table(t) if ws.has_table(t) else None for t in ("eval_samples", "judgments", "traces")
    }
    text = markdown.summary_markdown(cfg, **tables, **extra)
    path = ws.reports_dir / "summary.md"
    atomic_write_text(path, text)
    return StageOutput([], [path], f"→ {path}")


def _settings(cfg: StudyConfig) -> dict[str, object]:
    return {"spec": cfg.model_dump(mode="json"), "dims": DIMENSIONS}


STAGE = Stage(
    name="report",
    inputs=INPUTS,
    optional_inputs=("eval_samples", "judgments", "traces"),
    outputs=(),
    sections=(),
    body=body,
    help="Write the study's report: reports/summary.md.",
    estimate=lambda ws, cfg: Estimate(note="reports/summary.md"),
    settings=_settings,
)
