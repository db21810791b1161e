"""``prefdelta workspace``: look after the workspace folder itself.

``repair`` rewrites the shards an older version wrote with drifted column types (a
null-typed column in one shard, strings in the next), so that every table folder reads
as one table in pandas, pyarrow and ``datasets``. Stages read such shards anyway (cast on
read) and rewrite a table's shards when they next write it; the command does all at once.
"""

from __future__ import annotations

from typing import Annotated

import typer

from prefdelta.cli.common import WorkspaceOpt


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="Look after the workspace folder: repair drifted table shards.")

    @group.command("repair")
    def repair(
        workspace: WorkspaceOpt = None,
        table: Annotated[
            list[str] | None, typer.Option("--table", "-t", help="only this table (repeatable)")
        ] = None,
    ) -> None:
        """Rewrite table shards whose column types drifted from their table's declared schema."""
        from prefdelta.workspace import Workspace

        ws = Workspace(workspace)
        fixed = ws.repair(table or None)
        if not fixed:
            typer.echo(f"every shard already has its table's schema ({ws.root})")
            return
        for path in fixed:
            typer.echo(f"rewrote {ws.relative(path)}")
        typer.echo(f"{len(fixed)} shards rewritten with their table's schema")

    app.add_typer(group, name="workspace")
