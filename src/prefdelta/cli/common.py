"""Options and helpers shared by every CLI command."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from prefdelta.config import StudyConfig, load_config
from prefdelta.workspace import Workspace

WorkspaceOpt = Annotated[
    Path | None,
    typer.Option(
        "--workspace",
        "-w",
        help="workspace folder [env PREFDELTA_WORKSPACE; default ./workspace]",
        show_default=False,
    ),
]
ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config", "-c", help="study config YAML [default: the embedded demo study]", show_default=False
    ),
]
ForceOpt = Annotated[bool, typer.Option("--force", help="re-run even when inputs and config are unchanged")]
SetOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        "-s",
        help="override a config field, KEY=VALUE with a dotted key and a YAML value "
        "(repeatable), e.g. --set train.seeds=[0,1,2] --set eval.suites.0.problems.n=500",
        show_default=False,
    ),
]


def context(
    config: Path | None, workspace: Path | None, overrides: list[str] | None = None
) -> tuple[StudyConfig, Workspace]:
    """Load the config (with ``--set`` overrides), open the workspace and set torch threads."""
    import torch

    cfg = load_config(config, overrides or ())
    torch.set_num_threads(cfg.threads)
    return cfg, Workspace(workspace)


def stage_app(name: str, help_text: str) -> typer.Typer:
    """A sub-app whose bare invocation runs the stage; subcommands (audit, stats…) can be added."""
    from prefdelta.study.stages import STAGES

    app = typer.Typer(help=help_text, no_args_is_help=False, invoke_without_command=True)

    @app.callback(invoke_without_command=True)
    def _run(
        ctx: typer.Context,
        config: ConfigOpt = None,
        workspace: WorkspaceOpt = None,
        force: ForceOpt = False,
        overrides: SetOpt = None,
    ) -> None:
        if ctx.invoked_subcommand is not None:
            return
        cfg, ws = context(config, workspace, overrides)
        STAGES[name](ws, cfg, force=force)

    _run.__doc__ = help_text
    return app
