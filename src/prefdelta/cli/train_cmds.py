"""``prefdelta train`` subcommands.

- ``train run``: DPO/KTO on a pairs JSONL outside a study (one process). For several
  processes or GPUs: ``accelerate launch --config_file configs/accelerate/<cfg>.yaml -m
  prefdelta.train.launch`` with the same options.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from prefdelta.errors import UserError


def register(app: typer.Typer) -> None:
    @app.command("run")
    def run_cmd(
        model: Annotated[
            Path, typer.Option(help="save_pretrained folder of the policy (also the reference)")
        ],
        pairs: Annotated[Path, typer.Option(help="JSONL with prompt, chosen, rejected per line")],
        out: Annotated[Path, typer.Option(help="run folder: final/, metrics.jsonl, checkpoint/")],
        hyper: Annotated[
            str, typer.Option(help='JSON overrides of TrainHyper, e.g. \'{"algorithm": "kto"}\'')
        ] = "",
        ref_cache: Annotated[Path | None, typer.Option(help="shared reference log-prob cache folder")] = None,
    ) -> None:
        """Train on a pairs file; resumes from out/checkpoint when one exists."""
        from prefdelta.train.launch import parse_hyper, run

        if not (model / "config.json").is_file():
            raise UserError(f"--model {model}: not a save_pretrained folder (no config.json)")
        last = run(model, pairs, out, parse_hyper(hyper), ref_cache or out / "refcache")
        typer.echo(json.dumps(last))
