"""Stage: report."""

from __future__ import annotations

from pathlib import Path

from prefdelta.config import StudyConfig
from prefdelta.judge.dimensions import DIMENSIONS
from prefdelta.study import report as report_mod
from prefdelta.study.stages.base import StageResult, run_stage
from prefdelta.workspace import Workspace, code_version


def stage_report(ws: Workspace, cfg: StudyConfig, force: bool = False) -> StageResult:
    """Write the Markdown summary to ``reports/summary.md``."""
    inputs = ["generators", "pairs", "selections", "runs", "evals"]
    settings = {
        "name": cfg.name,
        "dims": DIMENSIONS,
        "pairs": cfg.pairs.model_dump(),
        "train": cfg.train.model_dump(),
    }

    def body() -> tuple[list[str], list[Path], str]:
        tables = {t: ws.read_table(t, required_by="report") for t in inputs}
        samples = ws.read_table("eval_samples") if ws.has_table("eval_samples") else None
        text = report_mod.summary_markdown(cfg, **tables, eval_samples=samples)
        path = ws.reports_dir / "summary.md"
        from prefdelta.workspace import atomic_write_text

        atomic_write_text(path, text)
        return [], [path], f"→ {path}"

    return run_stage(ws, "report", inputs, settings, code_version(report_mod), body, force)
