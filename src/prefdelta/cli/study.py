"""``prefdelta demo`` and ``prefdelta run``: every stage in order."""

from __future__ import annotations

import time

import typer

from prefdelta.cli.common import ConfigOpt, ForceOpt, SetOpt, WorkspaceOpt, context
from prefdelta.progress import info


def register(app: typer.Typer) -> None:
    @app.command("run")
    def run(
        config: ConfigOpt = None,
        workspace: WorkspaceOpt = None,
        force: ForceOpt = False,
        overrides: SetOpt = None,
    ) -> None:
        """Run the whole study of a config: problems → zoo → generate → judge → pairs → select → train → eval → report."""
        _run_all(config, workspace, force, overrides)

    @app.command("demo")
    def demo(workspace: WorkspaceOpt = None, force: ForceOpt = False, overrides: SetOpt = None) -> None:
        """Run the embedded study on the offline arith world (a few minutes on a 2-core CPU).

        `--set train.seeds=[0,1,2]` trains every run with three seeds (about a minute more).
        """
        _run_all(None, workspace, force, overrides)


def _run_all(config, workspace, force: bool, overrides: list[str] | None = None) -> None:
    from prefdelta.study.stages import run_study

    cfg, ws = context(config, workspace, overrides)
    start = time.perf_counter()
    run_study(ws, cfg, force=force)
    info(f"study '{cfg.name}' finished in {time.perf_counter() - start:.0f}s")
    typer.echo(f"summary: {ws.reports_dir / 'summary.md'}")
