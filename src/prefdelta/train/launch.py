"""Train from files: a pairs JSONL and hyper-parameters; the entry point ``accelerate launch`` runs.

``python -m prefdelta.train.launch --model DIR --pairs pairs.jsonl --out DIR [--hyper JSON]``
on one process, or the same after ``accelerate launch --config_file
src/prefdelta/data/accelerate/cpu_ddp_2.yaml -m`` (or a DeepSpeed / FSDP config) on many. Each line of
the pairs file is ``{"prompt": str, "chosen": str, "rejected": str}``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pydantic import ValidationError

from prefdelta.configio import format_validation_error
from prefdelta.errors import UserError
from prefdelta.train.config import TrainHyper

FIELDS = ("prompt", "chosen", "rejected")


def read_pairs(path: Path) -> tuple[list[str], list[str], list[str]]:
    """Prompts, chosen and rejected texts of a pairs JSONL; bad lines name file, line, field."""
    if not path.is_file():
        raise UserError(f"{path}: pairs file not found")
    cols: dict[str, list[str]] = {f: [] for f in FIELDS}
    for n, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise UserError(f"{path}:{n}:{err.colno}: not valid JSON ({err.msg})") from None
        if not isinstance(row, dict):
            raise UserError(f"{path}:{n}: expected a JSON object with {', '.join(FIELDS)}")
        for f in FIELDS:
            if not isinstance(row.get(f), str) or not row[f]:
                raise UserError(f"{path}:{n}: field {f!r} must be a non-empty string")
            cols[f].append(row[f])
    if not cols["prompt"]:
        raise UserError(f"{path}: no pairs")
    return cols["prompt"], cols["chosen"], cols["rejected"]


def parse_hyper(text: str) -> TrainHyper:
    """A :class:`TrainHyper` from a JSON object of overrides; unknown keys are an error."""
    try:
        values = json.loads(text) if text else {}
    except json.JSONDecodeError as err:
        raise UserError(f"--hyper: not valid JSON ({err.msg} at column {err.colno})") from None
    if not isinstance(values, dict):
        raise UserError("--hyper: expected a JSON object of TrainHyper fields")
    try:
        return TrainHyper.model_validate(values)
    except ValidationError as err:
        raise UserError(format_validation_error(err, "--hyper")) from None


def run(model: Path, pairs: Path, out: Path, hyper: TrainHyper, ref_cache: Path | None) -> dict[str, float]:
    from prefdelta.train.dpo import train_on_texts

    if hyper.dynamic is not None:
        raise UserError(
            "--hyper: dynamic selection needs each pair's delta, which a pairs file does not carry; "
            "train it in a study (train.launcher.kind: in_process)"
        )
    prompts, chosen, rejected = read_pairs(pairs)
    last, report = train_on_texts(model, prompts, chosen, rejected, hyper, out, ref_cache_root=ref_cache)
    return {**last, "truncated": float(len(report.truncated)), "dropped": float(len(report.dropped))}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m prefdelta.train.launch", description=__doc__)
    ap.add_argument(
        "--model", type=Path, required=True, help="save_pretrained folder of the policy/reference"
    )
    ap.add_argument("--pairs", type=Path, required=True, help="JSONL of prompt/chosen/rejected")
    ap.add_argument("--out", type=Path, required=True, help="run folder (final/, metrics.jsonl, checkpoint/)")
    ap.add_argument("--hyper", default="", help='JSON overrides of TrainHyper, e.g. \'{"algorithm": "kto"}\'')
    ap.add_argument("--ref-cache", type=Path, default=None, help="shared reference log-prob cache folder")
    args = ap.parse_args(argv)
    ref_cache = args.ref_cache or args.out / "refcache"
    last = run(args.model, args.pairs, args.out, parse_hyper(args.hyper), ref_cache)
    print(json.dumps(last))


if __name__ == "__main__":
    main()
