"""Exports of a selection as training data for TRL, OpenRLHF, LLaMA-Factory and friends.

Record formats (``FORMATS``):

- ``dpo``: TRL's standard preference format with an explicit prompt —
  ``{"prompt": str, "chosen": str, "rejected": str}``; the same columns OpenRLHF
  (``--prompt_key prompt --chosen_key chosen --rejected_key rejected``) and
  LLaMA-Factory (``"ranking": true`` with a column mapping) read.
- ``dpo-conversational``: TRL's conversational preference format — the prompt is the
  chat messages the chosen trace was sampled from, chosen and rejected one assistant
  message each (the trainer applies the tokenizer's chat template).
- ``kto`` / ``kto-conversational``: TRL's unpaired preference format —
  ``{"prompt", "completion", "label"}``: every chosen trace once with ``label=True``,
  every rejected trace once with ``label=False``, desirable and undesirable rows
  interleaved (so that any prefix of the file, and every batch of an unshuffled run, holds
  both). A trace that is chosen in one pair and rejected in another has no consistent
  label and is left out (counted in the result).
- ``pairs``: the full pair rows with prompt and texts — ids, generator-level and
  sample-level deltas, quadrant — for audits and custom trainers.

Prompts are the prompts the traces were sampled from (:mod:`prefdelta.pairs.trace_prompts`):
the rendered text as sent (chat template applied where the backend applied one) for the
plain formats, the chat messages for the conversational ones. A DPO record carries the
chosen trace's prompt; a KTO record its own trace's. Where that is approximate — traces
without a stored prompt, a pair whose two traces saw different prompts — the export
says so in its notes and in the dataset card.

Every export gets a dataset card (:mod:`prefdelta.pairs.card`): ``README.md`` inside a
``dataset`` folder, ``<file>.README.md`` beside a JSONL or Parquet file.

Containers (``CONTAINERS``): ``jsonl``, ``parquet`` and ``dataset``
(``datasets.Dataset.save_to_disk``); :func:`prefdelta.pairs.card.push_to_hub` uploads
only when asked.

Every write is atomic (temporary file or folder, then rename), and bad input — a
selection that does not exist or is empty, a pair whose trace or problem is missing —
raises before anything is written, so a partial training set never exists on disk.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from prefdelta.errors import UserError
from prefdelta.pairs import card as card_mod
from prefdelta.pairs.build import check_references
from prefdelta.pairs.trace_prompts import chat_prompt, plain_prompt, trace_prompts
from prefdelta.workspace import atomic_write_bytes, atomic_write_text

FORMATS: tuple[str, ...] = ("dpo", "dpo-conversational", "kto", "kto-conversational", "pairs")
CONTAINERS: tuple[str, ...] = ("jsonl", "parquet", "dataset")
SIDES: tuple[str, ...] = ("chosen", "rejected")


@dataclass(frozen=True)
class ExportResult:
    """What an export wrote: where, how many records, traces left out (KTO conflicts), notes."""

    path: Path
    records: int
    pairs: int
    dropped_conflicts: int = 0
    notes: tuple[str, ...] = field(default=())
    card: Path | None = None


@dataclass(frozen=True)
class Prepared:
    """The records of an export and what its card says, before anything is written."""

    records: pd.DataFrame
    pairs: int
    dropped_conflicts: int
    notes: tuple[str, ...]
    info: card_mod.CardInfo


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


def training_frame(pairs: pd.DataFrame, traces: pd.DataFrame, problems: pd.DataFrame) -> pd.DataFrame:
    """Pairs joined with the two trace texts and the prompts they were sampled from.

    ``prompt`` is the chosen trace's plain prompt, ``rejected_prompt`` the rejected one's;
    the columns starting with ``_`` (chat prompts, whether the prompt was stored) are for
    the record builders and are not exported. Every reference is checked first.
    """
    if pairs.empty:
        raise UserError("no pairs to export: refusing to write an empty training set")
    check_references(pairs, traces, problems)
    text = traces.drop_duplicates("trace_id").set_index("trace_id")["text"]
    prompts = trace_prompts(
        traces[traces["trace_id"].isin(pairs[["chosen_trace_id", "rejected_trace_id"]].stack())], problems
    )
    out = pairs.copy()
    for side in SIDES:
        ids = out[f"{side}_trace_id"]
        p = prompts.reindex(ids)
        pairs_of = list(zip(p["prompt_text"], p["prompt_messages"], strict=True))
        plain = [plain_prompt(t, m) for t, m in pairs_of]
        out["prompt" if side == "chosen" else "rejected_prompt"] = plain
        out[side] = text.reindex(ids).to_numpy()
        out[f"_{side}_chat"] = [chat_prompt(t, m) for t, m in pairs_of]
        out[f"_{side}_stored"] = p["stored"].fillna(False).astype(bool).to_numpy()
        out[f"_{side}_server_chat"] = [t is None and m is not None for t, m in pairs_of]
        out[f"_{side}_plain_sampled"] = [m is None for _, m in pairs_of]
    for col, what in (("prompt", "problem"), ("chosen", "chosen trace"), ("rejected", "rejected trace")):
        bad = out[col].isna() | (out[col].astype(str).str.strip() == "")
        if bad.any():
            raise UserError(f"pair {out['pair_id'][bad].iloc[0]!r}: its {what} has no text")
    return out


def _assistant(text: str) -> list[dict[str, str]]:
    return [{"role": "assistant", "content": text}]


def dpo_records(frame: pd.DataFrame, conversational: bool = False) -> pd.DataFrame:
    """TRL preference records: ``prompt``, ``chosen``, ``rejected`` (plain or conversational)."""
    if not conversational:
        return frame[["prompt", "chosen", "rejected"]].reset_index(drop=True)
    return pd.DataFrame(
        {
            "prompt": list(frame["_chosen_chat"]),
            "chosen": [_assistant(c) for c in frame["chosen"]],
            "rejected": [_assistant(r) for r in frame["rejected"]],
        }
    )


def _interleave(good: pd.DataFrame, bad: pd.DataFrame) -> pd.DataFrame:
    """Rows alternately from ``good`` and ``bad`` (each in its own order), the rest at the end."""
    order = [(2 * i, 0, i) for i in range(len(good))] + [(2 * i + 1, 1, i) for i in range(len(bad))]
    parts = (good, bad)
    return pd.DataFrame([parts[side].iloc[i] for _, side, i in sorted(order)]).reset_index(drop=True)


def kto_records(frame: pd.DataFrame, conversational: bool = False) -> tuple[pd.DataFrame, int]:
    """TRL unpaired records (``prompt``, ``completion``, ``label``) and the count of conflicts.

    Each trace appears once, with the prompt it was sampled from; traces labelled both
    ways across pairs are left out; desirable and undesirable rows alternate.
    """
    sides = []
    for side, label in (("chosen", True), ("rejected", False)):
        plain = frame["prompt" if side == "chosen" else "rejected_prompt"]
        prompts = frame[f"_{side}_chat"] if conversational else plain
        sides.append(
            pd.DataFrame(
                {
                    "trace_id": frame[f"{side}_trace_id"].to_numpy(),
                    "prompt": list(prompts),
                    "completion": frame[side].to_numpy(),
                    "label": label,
                }
            )
        )
    rows = pd.concat(sides, ignore_index=True).drop_duplicates(["trace_id", "label"])
    conflicted = rows["trace_id"].duplicated(keep=False)
    rows = rows[~conflicted].reset_index(drop=True)
    if rows.empty or rows["label"].nunique() < 2:
        raise UserError(
            "KTO export needs desirable and undesirable completions; after leaving out "
            f"{int(conflicted.sum() // 2)} traces labelled both ways, one side is empty"
        )
    if conversational:
        rows["completion"] = [_assistant(c) for c in rows["completion"]]
    rows = _interleave(rows[rows["label"]], rows[~rows["label"]])
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
    public = [c for c in frame.columns if not str(c).startswith("_")]
    return frame[public].reset_index(drop=True), 0


def prompt_notes(frame: pd.DataFrame, fmt: str) -> tuple[str, ...]:
    """Where the exported prompts are not exactly what the generators saw, in words."""
    seen: dict[str, dict[str, bool]] = {}
    for side in SIDES:
        for tid, stored, server, plain in zip(
            frame[f"{side}_trace_id"],
            frame[f"_{side}_stored"],
            frame[f"_{side}_server_chat"],
            frame[f"_{side}_plain_sampled"],
            strict=True,
        ):
            seen[tid] = {"stored": bool(stored), "server": bool(server), "plain": bool(plain)}
    notes = []
    rendered = sum(not v["stored"] for v in seen.values())
    if rendered:
        notes.append(
            f"{rendered} traces have no stored prompt (generated before prefdelta stored prompts, or "
            "imported): their prompt was rendered again from the problem"
        )
    conversational = fmt.endswith("-conversational")
    server = sum(v["server"] for v in seen.values())
    if server and not conversational:
        notes.append(
            f"{server} traces were sampled from chat messages a server rendered with its own chat template: "
            "their plain prompt is the user message (the conversational formats carry the messages)"
        )
    plain = sum(v["plain"] for v in seen.values())
    if plain and conversational:
        notes.append(
            f"{plain} traces were sampled from a plain prompt: the conversational prompt is that text as "
            "one user message"
        )
    if fmt.startswith(("dpo", "pairs")):
        if conversational:
            differ = sum(c != r for c, r in zip(frame["_chosen_chat"], frame["_rejected_chat"], strict=True))
        else:
            differ = int((frame["prompt"] != frame["rejected_prompt"]).sum())
        if differ:
            notes.append(
                f"{differ} pairs' traces were sampled from different prompts (other templates or chat "
                "templates): a record carries the chosen trace's prompt"
                + (" (and rejected_prompt the other)" if fmt == "pairs" else "")
            )
    return tuple(notes)


def card_path(out: Path, container: str) -> Path:
    """Where the dataset card of an export goes: inside a folder, beside a file."""
    return out / "README.md" if container == "dataset" else out.with_name(out.name + ".README.md")


def write_records(
    df: pd.DataFrame, out: Path, container: str, overwrite: bool = False, card: str | None = None
) -> Path:
    """Write ``df`` atomically as JSONL, Parquet or a ``datasets`` folder, with its card."""
    if container not in CONTAINERS:
        raise UserError(f"unknown container {container!r}; expected one of {', '.join(CONTAINERS)}")
    if df.empty:
        raise UserError(f"refusing to write an empty training set to {out}")
    out = Path(out)
    for path in (out, card_path(out, container)) if card is not None else (out,):
        if path.exists() and not overwrite:
            raise UserError(f"{path} exists; pass --overwrite to replace it")
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
        if card is not None:
            atomic_write_text(tmp / "README.md", card)
        if out.exists():
            shutil.rmtree(out) if out.is_dir() else out.unlink()
        os.replace(tmp, out)
        return out
    if card is not None:
        atomic_write_text(card_path(out, container), card)
    return out


def _selection_rule(selections: pd.DataFrame | None, selection_id: str | None) -> dict[str, object]:
    if selection_id is None or selections is None:
        return {"selection_id": "all", "strategy": "every pair"}
    row = selections[selections["selection_id"] == selection_id].iloc[0]
    rule: dict[str, object] = {"selection_id": selection_id}
    for key in ("strategy", "key", "fraction", "k", "seed", "stratified", "quadrants"):
        if key in row.index and not (isinstance(row[key], float) and pd.isna(row[key])):
            value = row[key]
            rule[key] = value.item() if hasattr(value, "item") else value
    return rule


def card_info(
    fmt: str,
    frame: pd.DataFrame,
    df: pd.DataFrame,
    traces: pd.DataFrame,
    problems: pd.DataFrame,
    rule: dict[str, object],
    judges: tuple[str, ...],
    dropped: int,
    notes: tuple[str, ...],
) -> card_mod.CardInfo:
    """What the card of an export states: sources and their licences, generators, counts."""
    from prefdelta.sources.registry import source_license

    prob = problems.drop_duplicates("problem_id").set_index("problem_id")
    used = prob.reindex(frame["problem_id"].unique())
    sources = tuple(sorted(used["source"].dropna().astype(str).unique())) if "source" in used else ()
    gens = sorted(set(frame.get("chosen_generator", [])) | set(frame.get("rejected_generator", [])))
    model = (
        traces.drop_duplicates("generator_id").set_index("generator_id")["model"]
        if "model" in traces.columns
        else pd.Series(dtype=object)
    )
    counts = {"records": len(df), "pairs": len(frame), "problems": int(frame["problem_id"].nunique())}
    if "label" in df.columns:
        counts |= {"desirable": int(df["label"].sum()), "undesirable": int((~df["label"]).sum())}
    if dropped:
        counts["left_out_conflicts"] = dropped
    return card_mod.CardInfo(
        fmt=fmt,
        sources=sources or ("unknown",),
        licenses=tuple(source_license(s) for s in sources) or ("unknown",),
        generators={str(g): str(model.get(g, "") or "") for g in gens},
        judges=judges,
        selection=rule,
        counts=counts,
        notes=notes,
    )


def prepare(
    pairs: pd.DataFrame,
    traces: pd.DataFrame,
    problems: pd.DataFrame,
    *,
    fmt: str = "dpo",
    selections: pd.DataFrame | None = None,
    selection_id: str | None = None,
    judges: tuple[str, ...] = (),
) -> Prepared:
    """The records of one selection (or every pair) in ``fmt``, their notes and card facts."""
    chosen = selected_pairs(pairs, selections, selection_id)
    frame = training_frame(chosen, traces, problems)
    df, dropped = records(frame, fmt)
    notes = prompt_notes(frame, fmt)
    rule = _selection_rule(selections, selection_id)
    info = card_info(fmt, frame, df, traces, problems, rule, judges, dropped, notes)
    return Prepared(df, len(chosen), dropped, notes, info)


def write(prepared: Prepared, out: Path, container: str = "jsonl", overwrite: bool = False) -> ExportResult:
    """Write prepared records and their dataset card to ``out`` (atomically, or not at all)."""
    if container not in CONTAINERS:
        raise UserError(f"unknown container {container!r}; expected one of {', '.join(CONTAINERS)}")
    card = card_mod.card_text(prepared.info)
    path = write_records(prepared.records, out, container, overwrite, card=card)
    return ExportResult(
        path=path,
        records=len(prepared.records),
        pairs=prepared.pairs,
        dropped_conflicts=prepared.dropped_conflicts,
        notes=prepared.notes,
        card=card_path(Path(out), container),
    )


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
    judges: tuple[str, ...] = (),
) -> ExportResult:
    """Export one selection (or every pair) in ``fmt`` to ``out`` with its dataset card.

    Nothing is written on error.
    """
    prepared = prepare(
        pairs, traces, problems, fmt=fmt, selections=selections, selection_id=selection_id, judges=judges
    )
    return write(prepared, out, container, overwrite)
