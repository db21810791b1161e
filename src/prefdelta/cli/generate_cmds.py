"""``prefdelta generate``: the generate stage; ``--generators FILE`` swaps in a generators YAML.

    prefdelta generate -c study.yaml
    prefdelta generate --generators gens.yaml -w ws        # the workspace's problems
    prefdelta generate templates

A generators file holds ``generators:`` (each an hf folder / hub id, vllm model or
openai endpoint) and optionally ``sampling:``; it replaces the spec's generators and
sampling. Killed, the stage resumes where it stopped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from prefdelta.cli.common import ConfigOpt, ForceOpt, SetOpt, WorkspaceOpt, run_one


def load_generators_file(path: Path):  # -> GeneratorsFile
    """The ``--generators`` YAML, validated; errors name the file and the field."""
    from prefdelta.configio import parse_config, read_yaml_file
    from prefdelta.generate.config import GeneratorsFile

    return parse_config(read_yaml_file(path, "generators"), str(path), GeneratorsFile)


def build_app(help_text: str) -> typer.Typer:
    app = typer.Typer(help=help_text, invoke_without_command=True)

    @app.callback(invoke_without_command=True)
    def _run(
        ctx: typer.Context,
        config: ConfigOpt = None,
        workspace: WorkspaceOpt = None,
        force: ForceOpt = False,
        overrides: SetOpt = None,
        generators: Annotated[
            Path | None, typer.Option("--generators", "-g", help="generators YAML (replaces the spec's)")
        ] = None,
    ) -> None:
        if ctx.invoked_subcommand is not None:
            return
        options: dict[str, object] = {}
        if generators is not None:
            gf = load_generators_file(generators)
            options["generators"] = [g.model_dump(mode="json", exclude_none=True) for g in gf.generators]
            for key, value in gf.sampling.model_dump(mode="json", exclude_unset=True).items():
                options[f"generate.{key}"] = value
        run_one("generate", config, workspace, force, overrides, options)

    _run.__doc__ = help_text
    return app


def register(app: typer.Typer) -> None:
    @app.command("templates")
    def templates_cmd() -> None:
        """List the built-in prompt templates and the sources they are the default for."""
        from prefdelta.generate.prompts import builtin_templates

        for name, t in sorted(builtin_templates().items()):
            typer.echo(f"{name:16s} answer={t.answer_format:7s} sources={', '.join(t.sources) or '-'}")
