"""Model cards for trained runs, and their upload to the Hugging Face Hub (only when asked).

Why a card: a checkpoint copied out of its workspace loses the tables that explain it.
The card carries, in the YAML metadata the Hub reads and in prose, what the run was
trained from (the base, DPO or KTO, every hyper-parameter), on which pairs (the
selection's strategy, rule and size) and what it scored afterwards (its ``evals`` rows
with their 95% intervals, beside the base's where the study evaluated it) — so a
pushed model can be judged without the study that made it.

The Hub validates card metadata on every commit: ``base_model`` and ``datasets`` must be
Hub ids. A base that is a local folder (a zoo model, your own copy) is therefore named
only in the body and in the ``prefdelta`` block unless ``base_model`` gives its Hub id.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from prefdelta.errors import UserError
from prefdelta.workspace import Workspace, atomic_write_text

CARD_NAME = "README.md"
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$")


@dataclass(frozen=True)
class RunInfo:
    """What a card states about one finished run, read from its workspace."""

    run: dict[str, Any]  # the run's row of the ``runs`` table
    hyper: dict[str, Any]  # hyper.json of the run folder (else the row's ``hyper``)
    selection: dict[str, Any]  # selection_id, strategy, n_pairs, pair_updates, and the rule
    evals: pd.DataFrame  # the run's ``evals`` rows, with the base's value beside them
    final_dir: Path
    base_is_local: bool


def check_hub_id(value: str, what: str) -> str:
    """``value`` when it has the shape of a Hub id (``name`` or ``owner/name``), else a UserError."""
    if not _HUB_ID.match(value) or "--" in value or ".." in value or value.endswith((".", "-")):
        raise UserError(f"{what}: {value!r} is not a Hugging Face Hub id (expected OWNER/NAME)")
    return value


def check_repo_id(repo_id: str) -> str:
    """A repository to push to: a Hub id with its owner (``OWNER/NAME``), else a UserError."""
    check_hub_id(repo_id, "--repo-id")
    if "/" not in repo_id:
        raise UserError(f"--repo-id: {repo_id!r} names no owner (expected OWNER/NAME)")
    return repo_id


def read_run(ws: Workspace, run_id: str) -> RunInfo:
    """The run ``run_id`` of the workspace: its row, hyper-parameters, selection and evals.

    A run id that is not in ``runs``, or whose ``final/`` folder is gone, is a user error.
    """
    runs = ws.read_table("runs", required_by="model card")
    rows = runs[runs["run_id"] == run_id]
    if rows.empty:
        ids = sorted(runs["run_id"].astype(str))
        known = ", ".join(ids[:3]) + (f", … ({len(ids)} in all)" if len(ids) > 3 else "")
        raise UserError(f"run {run_id!r} is not in the runs table of {ws.root} (runs: {known})")
    run = rows.iloc[0].to_dict()
    final_dir = ws.resolve(str(run["checkpoint"]))
    if not (final_dir / "config.json").is_file() and not (final_dir / "adapter_config.json").is_file():
        raise UserError(
            f"run {run_id}: {final_dir} holds no saved model (no config.json or adapter_config.json)"
        )
    hyper_file = ws.runs_dir / run_id / "hyper.json"
    hyper = json.loads(hyper_file.read_text() if hyper_file.is_file() else str(run["hyper"]))
    selection = {
        "selection_id": run["selection_id"],
        "strategy": run["strategy"],
        "n_pairs": int(run["n_pairs"]),
        "pair_updates": int(run["pair_updates"]),
    }
    if ws.has_table("selections"):
        sels = ws.read_table("selections")
        rule = sels[sels["selection_id"] == run["selection_id"]]
        if not rule.empty:
            first = rule.iloc[0]
            for col in ("key", "fraction", "seed"):
                if col in rule.columns and pd.notna(first[col]):
                    selection[col] = first[col].item() if hasattr(first[col], "item") else first[col]
    evals = pd.DataFrame()
    if ws.has_table("evals"):
        table = ws.read_table("evals")
        evals = table[table["model_id"] == run_id].copy()
        base = table[table["model_id"] == run["base_model"]]
        keys = ["suite", "benchmark", "metric"]
        base_values = base.set_index(keys)["value"].rename("base_value")
        evals = evals.join(base_values[~base_values.index.duplicated()], on=keys)
        evals = evals.sort_values(["domain", "suite", "level", "benchmark"], kind="stable")
    base_is_local = ws.resolve(str(run["base_path"])).exists()
    return RunInfo(run, hyper, selection, evals, final_dir, base_is_local)


def _eval_lines(evals: pd.DataFrame) -> str:
    if evals.empty:
        return "Not evaluated yet (run `prefdelta eval`, then write the card again).\n"
    lines = [
        "| suite | domain | benchmark | metric | n | value | 95% interval | base |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for _, r in evals.iterrows():
        base = r.get("base_value")
        lines.append(
            f"| {r['suite']} | {r['domain']} | {r['benchmark']} | {r['metric']} | {int(r['n'])} | "
            f"{r['value']:.3f} | [{r['ci_low']:.3f}, {r['ci_high']:.3f}] | "
            f"{'—' if base is None or pd.isna(base) else f'{base:.3f}'} |"
        )
    return "\n".join(lines) + "\n"


def card_text(info: RunInfo, base_model: str | None = None, datasets: tuple[str, ...] = ()) -> str:
    """The README.md of a run's ``final/`` folder: Hub model-card metadata, then prose.

    ``base_model``: the base's Hub id (declared in the metadata); without it the base is
    declared only when the run's base is a Hub id rather than a local folder.
    ``datasets``: Hub ids of the preference data (e.g. a ``pairs export --push-to-hub``).
    """
    from huggingface_hub import ModelCard, ModelCardData

    run = info.run
    algorithm = str(run["algorithm"])
    adapter = bool(run["adapter"])
    # a base that is no folder here is a Hub id, unless it is a path (a folder since moved)
    recorded = str(run["base_path"])
    declared = base_model or (None if info.base_is_local or not _HUB_ID.match(recorded) else recorded)
    if declared is not None:
        check_hub_id(declared, "base model")
    for d in datasets:
        check_hub_id(d, "dataset")
    tags = ["prefdelta", algorithm, "preference-optimization"] + (["lora"] if bool(run["lora"]) else [])
    evals = info.evals
    eval_meta = [
        {
            k: (v.item() if hasattr(v, "item") else v)
            for k, v in r.items()
            if k in ("suite", "domain", "benchmark", "level", "metric", "value", "n", "ci_low", "ci_high")
        }
        for r in evals.to_dict("records")
    ]
    data = ModelCardData(
        base_model=declared,
        library_name="peft" if adapter else "transformers",
        pipeline_tag="text-generation",
        tags=tags,
        datasets=list(datasets) or None,
        prefdelta={
            "run_id": str(run["run_id"]),
            "algorithm": algorithm,
            "variant": str(run["variant"]),
            "base": {"model": str(run["base_model"]), "path": str(run["base_path"])},
            "adapter": adapter,
            "selection": info.selection,
            "hyper": info.hyper,
            "evals": eval_meta,
        },
    )
    base_line = f"`{run['base_model']}` ({run['base_path']}" + (
        f"; on the Hub: `{declared}`)" if declared else ")"
    )
    weights = (
        "a LoRA adapter: load it on the base with `peft.PeftModel.from_pretrained(base, this_repo)`"
        if adapter
        else (
            "LoRA merged into the base: a plain model"
            if bool(run["lora"])
            else "full fine-tune: a plain model"
        )
    )
    rule = ", ".join(f"{k}: {v}" for k, v in info.selection.items())
    hyper = json.dumps(info.hyper, indent=2, sort_keys=True)
    body = (
        f"# {run['run_id']}\n\n"
        f"{algorithm.upper()} preference training by prefdelta (variant `{run['variant']}`, seed {run['seed']}).\n\n"
        f"**Base model:** {base_line}.\n\n"
        f"**Weights:** {weights}.\n\n"
        f"**Selection:** {rule}.\n\n"
        f"**Training:** final loss {float(run['final_loss']):.4f}, final reward margin "
        f"{float(run['final_margin']):.4f}, {int(run['n_truncated'])} examples truncated, "
        f"{int(run['n_dropped'])} dropped; launcher {run['launcher']}.\n\n"
        "## Evaluation\n\n"
        "prefdelta's `evals` rows for this run: bootstrap 95% intervals; *base* is the base "
        "model's value on the same benchmark where the study evaluated it.\n\n"
        f"{_eval_lines(evals)}\n"
        "## Hyper-parameters\n\n"
        f"```json\n{hyper}\n```\n"
    )
    return str(ModelCard(f"---\n{data.to_yaml()}\n---\n\n{body}"))


def write_card(info: RunInfo, base_model: str | None = None, datasets: tuple[str, ...] = ()) -> Path:
    """Write the card to ``final/README.md`` (atomically; it replaces peft's stub card)."""
    path = info.final_dir / CARD_NAME
    atomic_write_text(path, card_text(info, base_model, datasets))
    return path


def push_run(info: RunInfo, repo_id: str, private: bool = True) -> None:
    """Upload the run's ``final/`` folder (card included) as one commit of a model repo.

    Only ever called on request (``prefdelta model push``); the repository is created
    private unless ``private`` is False. An adapter is uploaded as the adapter it is.
    """
    from huggingface_hub import HfApi

    check_repo_id(repo_id)
    api = HfApi()
    api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
    api.upload_folder(
        repo_id=repo_id,
        folder_path=str(info.final_dir),
        repo_type="model",
        commit_message=f"prefdelta run {info.run['run_id']} ({info.run['algorithm']})",
    )
