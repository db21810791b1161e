"""Exports of a selection as training data for TRL, OpenRLHF, LLaMA-Factory and friends.

Record formats (``FORMATS``):

- ``dpo``: TRL's standard preference format with an explicit prompt —
  ``{"prompt": str, "chosen": str, "rejected": str}``; the same columns OpenRLHF
  (``--prompt_key prompt --chosen_key chosen --rejected_key rejected``) and
  LLaMA-Factory (``"ranking": true`` with a column mapping) read.
- ``dpo-conversational``: TRL's conversational preference format — the prompt is a list
  with one user message, chosen and rejected one assistant message each (the trainer
  applies the tokenizer's chat template).
- ``kto`` / ``kto-conversational``: TRL's unpaired preference format —
  ``{"prompt", "completion", "label"}``: every chosen trace once with ``label=True``,
  every rejected trace once with ``label=False``. A trace that is chosen in one pair and
  rejected in another has no consistent label and is left out (counted in the result).
- ``pairs``: the full pair rows with prompt and texts — ids, generator-level and
  sample-level deltas, quadrant — for audits and custom trainers.

Containers (``CONTAINERS``): ``jsonl``, ``parquet`` and ``dataset``
(``datasets.Dataset.save_to_disk``); :func:`push_to_hub` uploads only when asked.

Every write is atomic (temporary file or folder, then rename), and bad input — a
selection that does not exist or is empty, a pair whose trace or problem is missing —
raises before anything is written, so a partial training set never exists on disk.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from prefdelta.errors import UserError
from prefdelta.pairs.build import check_references
from prefdelta.workspace import atomic_write_bytes

FORMATS: tuple[str, ...] = ("dpo", "dpo-conversational", "kto", "kto-conversational", "pairs")
CONTAINERS: tuple[str, ...] = ("jsonl", "parquet", "dataset")
PROMPT_COLUMNS: tuple[str, ...] = ("prompt", "problem_text", "question")


@dataclass(frozen=True)
class ExportResult:
    """What an export wrote: where, how many records, and traces left out (KTO conflicts)."""

    path: Path
    records: int
    pairs: int
    dropped_conflicts: int = 0


def selected_pairs(
    pairs: pd.DataFrame, selections: pd.DataFrame | None, selection_id: str | None
) -> pd.DataFrame:
    """The pairs of one selection (in selection rank order), or every pair when none is named."""
    if pairs.empty:
        raise UserError("the pairs table is empty: nothing to export")
    if selection_id is None:
        return pairs.reset_index(drop=True)
    if selections is None:
        raise UserError(f"selection {selection_id!r} asked for, but there is no selections table")
    sel = selections[selections["selection_id"] == selection_id]
    if sel.empty:
        have = ", ".join(sorted(selections["selection_id"].unique())) or "none"
        raise UserError(f"no selection {selection_id!r} in the selections table (have: {have})")
    if "rank" in sel.columns:
        sel = sel.sort_values("rank")
    missing = ~sel["pair_id"].isin(set(pairs["pair_id"]))
    if missing.any():
        raise UserError(
            f"selection {selection_id!r} references pair {sel['pair_id'][missing].iloc[0]!r}, which is "
            f"not in the pairs table ({int(missing.sum())} such pairs); rebuild the selections"
        )
    return pairs.set_index("pair_id").loc[sel["pair_id"]].reset_index()


def _prompt_column(problems: pd.DataFrame) -> str:
    for col in PROMPT_COLUMNS:
        if col in problems.columns:
            return col
    raise UserError(f"problems table has no prompt column (expected one of {', '.join(PROMPT_COLUMNS)})")


def training_frame(pairs: pd.DataFrame, traces: pd.DataFrame, problems: pd.DataFrame) -> pd.DataFrame:
    """Pairs joined with their prompt and the two trace texts; every reference checked first."""
    if pairs.empty:
        raise UserError("no pairs to export: refusing to write an empty training set")
    check_references(pairs, traces, problems)
    text = traces.drop_duplicates("trace_id").set_index("trace_id")["text"]
    prompt = problems.drop_duplicates("problem_id").set_index("problem_id")[_prompt_column(problems)]
    out = pairs.copy()
    out["prompt"] = prompt.reindex(out["problem_id"]).to_numpy()
    out["chosen"] = text.reindex(out["chosen_trace_id"]).to_numpy()
    out["rejected"] = text.reindex(out["rejected_trace_id"]).to_numpy()
    for col, what in (("prompt", "problem"), ("chosen", "chosen trace"), ("rejected", "rejected trace")):
        bad = out[col].isna() | (out[col].astype(str).str.strip() == "")
        if bad.any():
            raise UserError(f"pair {out['pair_id'][bad].iloc[0]!r}: its {what} has no text")
    return out


def _user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text.rstrip("\n")}]


def _assistant(text: str) -> list[dict[str, str]]:
    return [{"role": "assistant", "content": text}]


def dpo_records(frame: pd.DataFrame, conversational: bool = False) -> pd.DataFrame:
    """TRL preference records: ``prompt``, ``chosen``, ``rejected`` (plain or conversational)."""
    if not conversational:
        return frame[["prompt", "chosen", "rejected"]].reset_index(drop=True)
    return pd.DataFrame(
        {
            "prompt": [_user(p) for p in frame["prompt"]],
            "chosen": [_assistant(c) for c in frame["chosen"]],
            "rejected": [_assistant(r) for r in frame["rejected"]],
        }
    )


def kto_records(frame: pd.DataFrame, conversational: bool = False) -> tuple[pd.DataFrame, int]:
    """TRL unpaired records (``prompt``, ``completion``, ``label``) and the count of conflicts.

    Each trace appears once; traces labelled both ways across pairs are left out.
    """
    rows = pd.concat(
        [
            pd.DataFrame(
                {
                    "trace_id": frame["chosen_trace_id"],
                    "prompt": frame["prompt"],
                    "completion": frame["chosen"],
                }
            ).assign(label=True),
            pd.DataFrame(
                {
                    "trace_id": frame["rejected_trace_id"],
                    "prompt": frame["prompt"],
                    "completion": frame["rejected"],
                }
            ).assign(label=False),
        ],
        ignore_index=True,
    ).drop_duplicates(["trace_id", "label"])
    conflicted = rows["trace_id"].duplicated(keep=False)
    rows = rows[~conflicted].reset_index(drop=True)
    if rows.empty or rows["label"].nunique() < 2:
        raise UserError(
            "KTO export needs desirable and undesirable completions; after leaving out "
            f"{int(conflicted.sum() // 2)} traces labelled both ways, one side is empty"
        )
    if conversational:
        rows["prompt"] = [_user(p) for p in rows["prompt"]]
        rows["completion"] = [_assistant(c) for c in rows["completion"]]
    return rows[["prompt", "completion", "label"]], int(conflicted.sum() // 2)


def records(frame: pd.DataFrame, fmt: str) -> tuple[pd.DataFrame, int]:
    """The records of ``fmt`` (see :data:`FORMATS`) and the traces left out."""
    if fmt not in FORMATS:
        raise UserError(f"unknown export format {fmt!r}; expected one of {', '.join(FORMATS)}")
    conversational = fmt.endswith("-conversational")
    if fmt.startswith("dpo"):
        return dpo_records(frame, conversational), 0
    if fmt.startswith("kto"):
        return kto_records(frame, conversational)
    return frame.reset_index(drop=True), 0


def write_records(df: pd.DataFrame, out: Path, container: str, overwrite: bool = False) -> Path:
    """Write ``df`` atomically as JSONL, Parquet or a ``datasets`` folder."""
    if container not in CONTAINERS:
        raise UserError(f"unknown container {container!r}; expected one of {', '.join(CONTAINERS)}")
    if df.empty:
        raise UserError(f"refusing to write an empty training set to {out}")
    out = Path(out)
    if out.exists() and not overwrite:
        raise UserError(f"{out} exists; pass --overwrite to replace it")
    if container == "jsonl":
        atomic_write_bytes(out, df.to_json(orient="records", lines=True, force_ascii=False).encode())
    elif container == "parquet":
        sink = pa.BufferOutputStream()
        pq.write_table(pa.Table.from_pandas(df, preserve_index=False), sink)
        atomic_write_bytes(out, sink.getvalue().to_pybytes())
    else:
        from datasets import Dataset

        tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        Dataset.from_pandas(df, preserve_index=False).save_to_disk(str(tmp))
        if out.exists():
            shutil.rmtree(out) if out.is_dir() else out.unlink()
        os.replace(tmp, out)
    return out


def push_to_hub(df: pd.DataFrame, repo_id: str, private: bool = True) -> None:
    """Upload ``df`` as a ``datasets`` dataset to the hub; only ever called on request."""
    from datasets import Dataset

    if df.empty:
        raise UserError("refusing to push an empty training set")
    Dataset.from_pandas(df, preserve_index=False).push_to_hub(repo_id, private=private)


def export(
    pairs: pd.DataFrame,
    traces: pd.DataFrame,
    problems: pd.DataFrame,
    out: Path,
    *,
    fmt: str = "dpo",
    container: str = "jsonl",
    selections: pd.DataFrame | None = None,
    selection_id: str | None = None,
    overwrite: bool = False,
) -> ExportResult:
    """Export one selection (or every pair) in ``fmt`` to ``out``; nothing is written on error."""
    chosen = selected_pairs(pairs, selections, selection_id)
    frame = training_frame(chosen, traces, problems)
    df, dropped = records(frame, fmt)
    path = write_records(df, out, container, overwrite)
    return ExportResult(path=path, records=len(df), pairs=len(chosen), dropped_conflicts=dropped)
