"""``prefdelta select``: the select stage (options override the ``select:`` section) and ``select list``."""

from __future__ import annotations

from typing import Annotated

import typer

from prefdelta.cli.common import ConfigOpt, ForceOpt, SetOpt, WorkspaceOpt, run_one
from prefdelta.workspace import Workspace


def build_app(help_text: str) -> typer.Typer:
    app = typer.Typer(help=help_text, invoke_without_command=True)

    @app.callback(invoke_without_command=True)
    def _run(
        ctx: typer.Context,
        config: ConfigOpt = None,
        workspace: WorkspaceOpt = None,
        force: ForceOpt = False,
        overrides: SetOpt = None,
        key: Annotated[
            str | None, typer.Option(help="a dimension, outcome, aggregate or generator_gap")
        ] = None,
        fraction: Annotated[float | None, typer.Option(help="share of the pool in top/random/bottom")] = None,
        k: Annotated[int | None, typer.Option(help="exactly k pairs instead of a fraction")] = None,
        seed: Annotated[int | None, typer.Option(help="seed of the random control")] = None,
        bottom: Annotated[bool | None, typer.Option(help="also write the bottom selection")] = None,
        stratify: Annotated[bool | None, typer.Option(help="round-robin over problems")] = None,
        quadrant: Annotated[list[str] | None, typer.Option(help="restrict the pool to this quadrant")] = None,
    ) -> None:
        if ctx.invoked_subcommand is not None:
            return
        given = {
            "key": key,
            "fraction": fraction,
            "k": k,
            "seed": seed,
            "bottom": bottom,
            "stratify": stratify,
            "quadrants": quadrant,
        }
        options = {f"select.{n}": v for n, v in given.items() if v not in (None, [], ())}
        run_one("select", config, workspace, force, overrides, options)

    _run.__doc__ = help_text
    return app


def register(app: typer.Typer) -> None:
    @app.command("list")
    def list_cmd(workspace: WorkspaceOpt = None) -> None:
        """The selections: id, strategy, size, mean deltas of their pairs."""
        ws = Workspace(workspace)
        sels = ws.read_table("selections", required_by="select list")
        pairs = ws.read_table("pairs", required_by="select list").set_index("pair_id")
        for sid, g in sels.groupby("selection_id", sort=False):
            sub = pairs.reindex(g["pair_id"])
            typer.echo(
                f"{sid}\t{g['strategy'].iloc[0]}\t{len(g)} pairs\t"
                f"mean Δ aggregate {sub['delta_aggregate'].mean():+.3f}\t"
                f"mean generator gap {sub['generator_gap'].mean():+.3f}\t"
                f"{sub['problem_id'].nunique()} problems"
            )
