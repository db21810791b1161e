"""Options and helpers shared by every CLI command, and the command of one stage.

Every stage command is a thin wrapper over the stage function of the stage table: it
loads the spec (``--config``; else the spec the workspace last ran with; else the
defaults), applies ``--set`` overrides and the command's own options (which are
overrides too, by another name), and calls :func:`prefdelta.study.runner.run_study`
with that one stage.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Annotated, Any

import typer

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
        "--config",
        "-c",
        help="study spec YAML [default: the spec the workspace last ran with, else the defaults]",
        show_default=False,
    ),
]
ForceOpt = Annotated[bool, typer.Option("--force", help="re-run even when inputs and config are unchanged")]
SetOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        "-s",
        help="override a spec field, KEY=VALUE with a dotted key and a YAML value "
        "(repeatable), e.g. --set train.seeds=[0,1,2] --set eval.limit=50",
        show_default=False,
    ),
]


def set_path(data: dict[str, Any], dotted: str, value: Any) -> None:
    """``data[a][b]… = value`` for ``dotted = "a.b…"`` (sections created as needed)."""
    node = data
    parts = dotted.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value


def stage_spec(
    config: Path | None,
    workspace: Path | None,
    overrides: list[str] | None = None,
    options: dict[str, Any] | None = None,
):  # -> tuple[StudyConfig, Workspace]
    """The spec a stage command runs with, and the workspace.

    ``options``: dotted keys set by the command's own options (applied after ``--set``).
    """
    from prefdelta.configio import apply_overrides, read_yaml_file
    from prefdelta.study.spec import SPEC_FILE, parse_spec, spec_data

    ws = Workspace(workspace)
    recorded = ws.root / SPEC_FILE
    if config is not None:  # `extends:` resolved as by `prefdelta run`
        data, source = spec_data(config)
    elif recorded.is_file():
        data, source = read_yaml_file(recorded, "spec") or {}, str(recorded)
    else:
        data, source = {}, "the default spec"
    if not isinstance(data, dict):
        from prefdelta.errors import UserError

        raise UserError(f"{source}: expected a mapping of config sections at the top level")
    if overrides:
        data = apply_overrides(data, overrides)
        source += " with --set " + " ".join(overrides)
    if options:
        data = copy.deepcopy(data)
        for key, value in options.items():
            set_path(data, key, value)
        source += " with " + ", ".join(f"--{k.rsplit('.', 1)[-1].replace('_', '-')}" for k in options)
    return parse_spec(data, source), ws


def run_one(
    name: str, config: Path | None, workspace: Path | None, force: bool, overrides, options=None
) -> None:
    """Run the stage ``name`` of the spec (the body of every stage command)."""
    from prefdelta.study.runner import run_study
    from prefdelta.study.spec import SPEC_FILE
    from prefdelta.study.stages import BY_NAME

    cfg, ws = stage_spec(config, workspace, overrides, options)
    record = config is not None or not (ws.root / SPEC_FILE).is_file()
    run_study(ws, cfg, force=force, stages=(BY_NAME[name],), record=record)


def stage_app(name: str, help_text: str) -> typer.Typer:
    """A sub-app whose bare invocation runs the stage; subcommands (audit, stats…) can be added."""
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
        run_one(name, config, workspace, force, overrides)

    _run.__doc__ = help_text
    return app
