"""``prefdelta pairs``: the pairs stage, and import external traces, stats, export.

- ``pairs import``: bring traces and judgments from outside the study into a workspace —
  the published GSM8K model solutions (``--gsm8k-solutions FILE``, with ``--test-file``
  unless ``test.jsonl`` sits beside it; judged by the calculator-annotation checker or by
  correctness only), or your own files (``--traces`` /
  ``--judgments`` / ``--generators`` / ``--problems``, JSONL or Parquet), every row checked
  by :mod:`prefdelta.validate` and every table written only when all of them passed;
- the bare ``prefdelta pairs``: the pairs stage; ``--strategy``, ``--chosen`` … override
  the spec's ``pairs:`` section (the workspace's spec, or the defaults for imported data);
- ``pairs stats``: counts, quadrants, delta distributions, correlations, delta by gap,
  with PNG plots;
- ``pairs export``: a selection (or every pair) as TRL DPO / KTO records, JSONL, Parquet
  or a ``datasets`` folder; ``--push-to-hub`` only when you ask.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import numpy as np
import pandas as pd
import typer

from prefdelta import validate
from prefdelta.cli.common import ConfigOpt, ForceOpt, SetOpt, WorkspaceOpt, run_one
from prefdelta.errors import UserError
from prefdelta.judge.dimensions import DIMENSIONS
from prefdelta.sources.base import Record, read_records
from prefdelta.workspace import Workspace

_PARAMS = re.compile(r"^(\d+(?:\.\d+)?)([mb])_", re.IGNORECASE)


def read_checked(
    path: Path,
    what: str,
    check: Callable[[list[Record]], None],
    reader: Callable[[Path, str], list[Record]] = read_records,
) -> list[Record]:
    """The rows of a user's JSONL (``.jsonl``/``.jsonl.gz``) or Parquet file, every one checked.

    ``check`` is a validator of :mod:`prefdelta.validate`: it names file, line and field
    of the first bad value. ``reader`` reads another format into records (a CSV file).
    """
    records = reader(path, what)
    if not records:
        raise UserError(f"{path}: no {what} found (the file is empty)")
    check(records)
    return records


def read_user_tables(
    traces: Path, judgments: Path, problems: Path | None, generators: Path | None, rubric: Path | None
) -> dict[str, pd.DataFrame]:
    """The tables of ``pairs import`` from a user's files, all checked before any is written.

    Checks across files: a judgment names an imported trace; with ``--problems``, a trace
    names an imported problem; with ``--generators``, a trace names an imported generator.
    """
    from prefdelta.judge.rubric import load_rubric

    scale = load_rubric(rubric).scale
    rows = {"traces": read_checked(traces, "traces", validate.trace_rows)}
    known = {r.data["trace_id"] for r in rows["traces"]}
    rows["judgments"] = read_checked(
        judgments,
        "judgments",
        lambda rs: validate.judgment_rows(rs, DIMENSIONS, (scale.min, scale.max), known),
    )
    for path, name, check, column in (
        (problems, "problems", validate.problem_rows, "problem_id"),
        (generators, "generators", validate.generator_rows, "generator_id"),
    ):
        if path is not None:
            rows[name] = read_checked(path, name, check)
            ids = {r.data[column] for r in rows[name]}
            for rec in rows["traces"]:
                validate.reference(rec.data[column], ids, rec.where, column, f"{name} ({path})")
    tables = {name: pd.DataFrame([r.data for r in recs]) for name, recs in rows.items()}
    if "generators" not in tables:
        tables["generators"] = generators_from_traces(tables["traces"], tables["judgments"], family=None)
    return tables


def params_from_id(generator_id: str) -> float:
    """Parameter count written in an id like ``175b_finetuning`` (NaN when there is none)."""
    m = _PARAMS.match(generator_id)
    if not m:
        return float("nan")
    return float(m.group(1)) * (1e9 if m.group(2).lower() == "b" else 1e6)


def generators_from_traces(traces: pd.DataFrame, judgments: pd.DataFrame, family: str | None) -> pd.DataFrame:
    """A generators table for imported traces: ids, params from the id, accuracy as capability."""
    correct = judgments.groupby("trace_id")["outcome"].max().astype(float)
    acc = traces.assign(c=traces["trace_id"].map(correct)).groupby("generator_id")["c"].mean()
    return pd.DataFrame(
        {
            "generator_id": acc.index,
            "family": family if family is not None else np.nan,
            "params": [params_from_id(g) for g in acc.index],
            "backend": "imported",
            "model": "",
            "sampling": "",
            "capability": acc.to_numpy(),
        }
    )


def judge_traces(traces: pd.DataFrame, problems: pd.DataFrame, judge: str) -> pd.DataFrame:
    """Judgments of imported traces: the calc checker's five scores, or correctness only.

    ``outcome`` is the published grade (``is_correct``) when the traces carry one.
    """
    if judge not in ("calc", "outcome"):
        raise UserError(f"unknown --judge {judge!r}; expected calc or outcome")
    rows = []
    if judge == "calc":
        from prefdelta.judge.calc import calc_judge

        prob = problems.set_index("problem_id")
        for tid, pid, text in zip(traces["trace_id"], traces["problem_id"], traces["text"], strict=True):
            if pid not in prob.index:
                raise UserError(f"trace {tid} refers to problem {pid!r}, which is not in the problems")
            p = prob.loc[pid]
            rows.append({"trace_id": tid, **calc_judge(p["prompt"], p["reference_solution"], text)})
        df = pd.DataFrame(rows)
        judge_id = "calc"
    else:
        if "is_correct" not in traces.columns:
            raise UserError("--judge outcome needs an 'is_correct' column in the traces")
        df = pd.DataFrame({"trace_id": traces["trace_id"], "outcome": traces["is_correct"].astype(bool)})
        for d in DIMENSIONS:
            df[d] = np.nan
        judge_id = "outcome"
    if "is_correct" in traces.columns:
        df["outcome"] = traces["is_correct"].astype(bool).to_numpy()
    df.insert(1, "judge_id", judge_id)
    df.insert(2, "rubric_hash", judge_id)
    df.insert(3, "repeat", 0)
    df["raw"] = ""
    df["error"] = pd.Series([None] * len(df), dtype="string")
    return df[["trace_id", "judge_id", "rubric_hash", "repeat", *DIMENSIONS, "outcome", "raw", "error"]]


def build_app(help_text: str) -> typer.Typer:
    """The bare ``prefdelta pairs``: the pairs stage; its options override the ``pairs:`` section."""
    app = typer.Typer(help=help_text, invoke_without_command=True)

    @app.callback(invoke_without_command=True)
    def _run(
        ctx: typer.Context,
        config: ConfigOpt = None,
        workspace: WorkspaceOpt = None,
        force: ForceOpt = False,
        overrides: SetOpt = None,
        strategy: Annotated[
            str | None, typer.Option(help="cross_generator, within_generator or correctness")
        ] = None,
        chosen: Annotated[list[str] | None, typer.Option(help="generator allowed on the chosen side")] = None,
        rejected: Annotated[
            list[str] | None, typer.Option(help="generator allowed on the rejected side")
        ] = None,
        per_problem: Annotated[int | None, typer.Option(help="pairs per (generator pair, problem)")] = None,
        min_gap: Annotated[float | None, typer.Option(help="smallest capability gap (0-1)")] = None,
        quadrant: Annotated[list[str] | None, typer.Option(help="keep candidates in this quadrant")] = None,
        flagged: Annotated[str | None, typer.Option(help="keep or drop flagged pairs")] = None,
        seed: Annotated[int | None, typer.Option(help="matching seed")] = None,
    ) -> None:
        if ctx.invoked_subcommand is not None:
            return
        given = {
            "strategy": strategy,
            "chosen": chosen,
            "rejected": rejected,
            "per_problem": per_problem,
            "min_gap": min_gap,
            "quadrants": quadrant,
            "flagged": flagged,
            "seed": seed,
        }
        options = {f"pairs.{k}": v for k, v in given.items() if v not in (None, [], ())}
        run_one("pairs", config, workspace, force, overrides, options)

    _run.__doc__ = help_text
    return app


def register(app: typer.Typer) -> None:
    @app.command("import")
    def import_cmd(
        workspace: WorkspaceOpt = None,
        gsm8k_solutions: Annotated[
            Path | None,
            typer.Option(help="GSM8K model solutions file (the published example_model_solutions.jsonl)"),
        ] = None,
        test_file: Annotated[
            Path | None,
            typer.Option(
                help="for --gsm8k-solutions: the GSM8K test.jsonl its questions come from "
                "(default: test.jsonl beside it)"
            ),
        ] = None,
        traces: Annotated[Path | None, typer.Option(help="traces file (JSONL or Parquet)")] = None,
        judgments: Annotated[Path | None, typer.Option(help="judgments file (JSONL or Parquet)")] = None,
        generators: Annotated[Path | None, typer.Option(help="generators file (optional)")] = None,
        problems: Annotated[Path | None, typer.Option(help="problems file (needed for export)")] = None,
        judge: Annotated[
            str, typer.Option(help="for --gsm8k-solutions: 'calc' (annotation checker) or 'outcome'")
        ] = "calc",
        rubric: Annotated[
            Path | None, typer.Option(help="rubric YAML whose scale the scores must lie on (default 1-5)")
        ] = None,
        overwrite: Annotated[bool, typer.Option(help="replace tables the workspace already has")] = False,
    ) -> None:
        """Import external traces and judgments (GSM8K model solutions or your own files)."""
        ws = Workspace(workspace)
        if ws.has_table("traces") and not overwrite:
            raise UserError(f"workspace {ws.root} already has a traces table; pass --overwrite to replace it")
        if gsm8k_solutions is not None:
            from prefdelta.sources.gsm8k import read_model_solutions

            probs, trs = read_model_solutions(gsm8k_solutions, test_file)
            judg = judge_traces(trs, probs, judge)
            gens = generators_from_traces(trs, judg, family="gpt3")
        else:
            if test_file is not None:
                raise UserError("--test-file goes with --gsm8k-solutions FILE (the questions it answers)")
            if traces is None or judgments is None:
                raise UserError("pass --gsm8k-solutions FILE, or --traces FILE and --judgments FILE")
            read = read_user_tables(traces, judgments, problems, generators, rubric)
            trs, judg, gens, probs = (read.get(k) for k in ("traces", "judgments", "generators", "problems"))
        tables = {"traces": trs, "judgments": judg, "generators": gens}
        if probs is not None:
            tables["problems"] = probs
        # all or nothing; columns of the user's files that no stage reads are dropped (and named)
        ws.write_tables(tables, extra="drop")
        for stage in ("pairs", "select"):
            ws.invalidate(stage)
        capability = gens["capability"] if "capability" in gens else [float("nan")] * len(gens)
        caps = ", ".join(f"{g} {c:.3f}" for g, c in zip(gens["generator_id"], capability, strict=True))
        typer.echo(
            f"imported {len(trs)} traces of {trs['generator_id'].nunique()} generators on "
            f"{trs['problem_id'].nunique()} problems into {ws.root} (accuracy: {caps})"
        )

    @app.command("stats")
    def stats_cmd(
        workspace: WorkspaceOpt = None,
        selection: Annotated[str | None, typer.Option(help="describe only this selection_id")] = None,
        out: Annotated[Path | None, typer.Option(help="folder for the Markdown, JSON and PNGs")] = None,
    ) -> None:
        """Counts, quadrants, delta distributions (PNG histograms), correlations, delta by gap."""
        from prefdelta.pairs import stats as pairs_stats
        from prefdelta.pairs.export import selected_pairs

        ws = Workspace(workspace)
        pairs = ws.read_table("pairs", required_by="pairs stats")
        sels = ws.read_table("selections") if selection is not None else None
        subset = selected_pairs(pairs, sels, selection)
        folder = out or ws.reports_dir / "pairs" / (selection or "all")
        stats, files = pairs_stats.write_report(subset, folder, title=f"Pair set: {selection or 'all pairs'}")
        typer.echo(pairs_stats.render_markdown(stats, title=f"Pair set: {selection or 'all pairs'}"))
        typer.echo("written: " + ", ".join(str(f) for f in files))

    @app.command("export")
    def export_cmd(
        out: Annotated[Path, typer.Option("--out", "-o", help="output file or folder")],
        workspace: WorkspaceOpt = None,
        fmt: Annotated[
            str,
            typer.Option("--format", help="dpo, dpo-conversational, kto, kto-conversational or pairs"),
        ] = "dpo",
        to: Annotated[str, typer.Option("--to", help="jsonl, parquet or dataset (save_to_disk)")] = "jsonl",
        selection: Annotated[
            str | None, typer.Option(help="selection_id to export (default: all pairs)")
        ] = None,
        overwrite: Annotated[bool, typer.Option(help="replace an existing output")] = False,
        push_to_hub: Annotated[
            str | None, typer.Option(help="also upload to this hub dataset repo (only when asked)")
        ] = None,
        public: Annotated[bool, typer.Option(help="make the hub dataset public")] = False,
    ) -> None:
        """Export a selection as TRL DPO/KTO records, JSONL, Parquet or a datasets folder, with a card."""
        from prefdelta.pairs import card as card_mod
        from prefdelta.pairs import export as export_mod

        ws = Workspace(workspace)
        pairs = ws.read_table("pairs", required_by="pairs export")
        sels = ws.read_table("selections", required_by="pairs export") if selection else None
        judges: tuple[str, ...] = ()
        if ws.has_table("judgments"):
            judgments = ws.read_table("judgments")
            if "judge_id" in judgments.columns:
                judges = tuple(sorted(judgments["judge_id"].dropna().astype(str).unique()))
        tables = (
            pairs,
            ws.read_table("traces", required_by="pairs export"),
            ws.read_table("problems", required_by="pairs export"),
        )
        prepared = export_mod.prepare(
            *tables, fmt=fmt, selections=sels, selection_id=selection, judges=judges
        )
        res = export_mod.write(prepared, out, to, overwrite)
        note = (
            f", {res.dropped_conflicts} traces labelled both ways left out" if res.dropped_conflicts else ""
        )
        typer.echo(
            f"exported {res.records} {fmt} records from {res.pairs} pairs to {res.path}{note} (card: {res.card})"
        )
        for line in res.notes:
            typer.echo(f"note: {line}")
        if push_to_hub:
            card = card_mod.card_text(prepared.info, hub=True)
            card_mod.push_to_hub(prepared.records, card, push_to_hub, private=not public)
            typer.echo(f"pushed to the hub: {push_to_hub}")
