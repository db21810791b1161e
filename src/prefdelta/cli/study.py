"""``prefdelta run``, ``prefdelta demo`` and ``prefdelta templates``: every stage in order."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from prefdelta.cli.common import ConfigOpt, ForceOpt, SetOpt, WorkspaceOpt
from prefdelta.errors import UserError


def register(app: typer.Typer) -> None:
    @app.command("run")
    def run(
        spec: Annotated[Path | None, typer.Argument(help="study spec YAML", show_default=False)] = None,
        config: ConfigOpt = None,
        template: Annotated[
            str | None,
            typer.Option("--template", "-t", help="a shipped study template (see `prefdelta templates`)"),
        ] = None,
        workspace: WorkspaceOpt = None,
        force: ForceOpt = False,
        overrides: SetOpt = None,
        dry_run: Annotated[
            bool, typer.Option("--dry-run", help="print the plan (cached stages, requests, runs) and stop")
        ] = False,
    ) -> None:
        """Run a whole study: problems → zoo → generate → judge → pairs → select → train → eval → report."""
        if spec is not None and config is not None:
            raise UserError("give the spec once: as an argument or with --config")
        path = spec or config
        if path is None and template is None:
            raise UserError(
                "give a study spec (prefdelta run SPEC.yaml) or --template NAME (prefdelta templates)"
            )
        _run_all(path, template, workspace, force, overrides, dry_run)

    @app.command("demo")
    def demo(
        workspace: WorkspaceOpt = None,
        force: ForceOpt = False,
        overrides: SetOpt = None,
        dry_run: Annotated[bool, typer.Option("--dry-run", help="print the plan and stop")] = False,
    ) -> None:
        """Run the demo study (template `demo`) on the offline arith world (a few minutes on a 2-core CPU)."""
        _run_all(None, "demo", workspace, force, overrides, dry_run)

    @app.command("templates")
    def templates() -> None:
        """List the study templates shipped with prefdelta (run one with `prefdelta run --template NAME`)."""
        from prefdelta.study.spec import builtin_templates

        for name, description in builtin_templates().items():
            typer.echo(f"{name:24s} {description}")


def _run_all(path, template, workspace, force: bool, overrides, dry_run: bool) -> None:
    from prefdelta.study.spec import load_spec
    from prefdelta.workspace import Workspace

    cfg = load_spec(path, overrides or (), template=template)
    ws = Workspace(workspace)
    if dry_run:
        from prefdelta.study.runner import plan

        typer.echo(f"plan of study '{cfg.name}' in {ws.root}:")
        for row in plan(ws, cfg):
            typer.echo(f"  {row.stage:9s} {row.status}" + (f": {row.work}" if row.work else ""))
        return
    from prefdelta.study.runner import run_study

    run_study(ws, cfg, force=force)
    typer.echo(f"report: {ws.reports_dir / 'report.html'}")
    typer.echo(f"summary: {ws.reports_dir / 'summary.md'}")
