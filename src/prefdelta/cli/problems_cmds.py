"""``prefdelta problems``: the problems stage, with options to name one source without a spec.

prefdelta problems -c study.yaml
prefdelta problems --source gsm8k --split train --n 200 -w ws
prefdelta problems --path mine.jsonl --prompt-column q --answer-column a --id-column uid --name mine -w ws
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from prefdelta.cli.common import ConfigOpt, ForceOpt, SetOpt, WorkspaceOpt, run_one


def build_app(help_text: str) -> typer.Typer:
    app = typer.Typer(help=help_text, invoke_without_command=True)

    @app.callback(invoke_without_command=True)
    def _run(
        ctx: typer.Context,
        config: ConfigOpt = None,
        workspace: WorkspaceOpt = None,
        force: ForceOpt = False,
        overrides: SetOpt = None,
        source: Annotated[
            str | None, typer.Option(help="a built-in source (arith, gsm8k, math500, …)")
        ] = None,
        path: Annotated[
            Path | None, typer.Option(help="your own JSONL / Parquet file or dataset folder")
        ] = None,
        hub: Annotated[str | None, typer.Option(help="a hub dataset id (needs network)")] = None,
        split: Annotated[str | None, typer.Option(help="split to read")] = None,
        n: Annotated[int | None, typer.Option("--n", help="keep n problems (a seeded draw)")] = None,
        seed: Annotated[int, typer.Option(help="seed of the draw (arith: of the world)")] = 0,
        name: Annotated[str, typer.Option(help="--path/--hub: source name of the rows")] = "custom",
        prompt_column: Annotated[
            str, typer.Option(help="--path/--hub: column with the problem")
        ] = "question",
        answer_column: Annotated[
            str | None, typer.Option(help="--path/--hub: column with the answer")
        ] = "answer",
        solution_column: Annotated[
            str | None, typer.Option(help="--path/--hub: column with a solution")
        ] = None,
        id_column: Annotated[
            str | None, typer.Option(help="--path/--hub: column with a native id (each id once)")
        ] = None,
        answer_format: Annotated[
            str, typer.Option(help="--path/--hub: as_is, gsm8k (#### N) or boxed")
        ] = "as_is",
        data_dir: Annotated[
            Path | None, typer.Option(help="local benchmark mirror [env PREFDELTA_DATA_DIR]")
        ] = None,
    ) -> None:
        if ctx.invoked_subcommand is not None:
            return
        options: dict[str, object] = {}
        if source or path or hub:
            entry: dict[str, object] = {"seed": seed}
            if source:
                entry["source"] = source
            else:
                entry.update(
                    path=str(path) if path else None,
                    hub=hub,
                    name=name,
                    answer_format=answer_format,
                    columns={
                        "prompt": prompt_column,
                        "reference_answer": answer_column or None,
                        "reference_solution": solution_column,
                        "id": id_column,
                    },
                )
            entry.update({k: v for k, v in (("split", split), ("n", n)) if v is not None})
            options["problems"] = [{k: v for k, v in entry.items() if v is not None}]
        if data_dir is not None:
            options["data_dir"] = str(data_dir)
        run_one("problems", config, workspace, force, overrides, options)

    _run.__doc__ = help_text
    return app
