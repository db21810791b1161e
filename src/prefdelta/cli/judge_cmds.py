"""Extra ``prefdelta judge`` subcommands: ``audit``, ``pairwise`` and ``gsm8k-check``."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
import typer

from prefdelta import validate
from prefdelta.cli.common import ConfigOpt, WorkspaceOpt, stage_spec
from prefdelta.cli.pairs_cmds import read_checked
from prefdelta.errors import UserError
from prefdelta.sources.base import Record, read_records

FILE_SUFFIXES = (".parquet", ".csv", ".jsonl", ".jsonl.gz", ".json")


def _csv_value(column: str, cell: str | None) -> Any:
    """A CSV cell as JSON would have it: empty is null, numbers and true/false are typed;
    ids and trace texts stay text (``"007"`` is an id, not 7)."""
    if cell is None or cell == "":
        return None
    if column.endswith("_id") or column == "text":
        return cell
    if cell.lower() in ("true", "false"):
        return cell.lower() == "true"
    for kind in (int, float):
        try:
            return kind(cell)
        except ValueError:
            pass
    return cell


def csv_records(path: Path, what: str) -> list[Record]:
    """Rows of a CSV file with a header line, as records (``line N`` as in the file).

    Cells are typed one by one (not per column, as pandas does), so that a ``nan`` or a
    word in a score column is refused on its own line rather than turning the whole
    column into text.
    """
    if not path.is_file():
        raise UserError(f"{what} file {path} not found")
    records = []
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            for row in reader:
                if None in row:
                    raise UserError(f"{path}: line {reader.line_num}: more fields than the header names")
                data = {k: _csv_value(k, v) for k, v in row.items()}
                records.append(Record(path, reader.line_num, data))
    except (UnicodeDecodeError, csv.Error) as err:
        raise UserError(f"{path}: not a readable CSV file ({err})") from None
    return records


def read_frame(
    spec: str, ws_root: Path | None, what: str, check: Callable[[list[Record]], None]
) -> pd.DataFrame:
    """A workspace table by name, or a user's file (``.parquet``, ``.jsonl``, ``.jsonl.gz``,
    ``.json`` lines, ``.csv``) whose every row passes ``check``, a validator of
    :mod:`prefdelta.validate`.

    Why check: a hand-made labels file with a NaN, an off-scale score or a repeat given
    twice would shift every correlation of the audit without a word.
    """
    path = Path(spec)
    if path.name.endswith(FILE_SUFFIXES):
        reader = csv_records if path.suffix == ".csv" else read_records
        return pd.DataFrame([r.data for r in read_checked(path, what, check, reader)])
    from prefdelta.workspace import Workspace

    return Workspace(ws_root).read_table(spec, required_by="judge audit")


def _select_judge(df: pd.DataFrame, judge_id: str | None, what: str) -> pd.DataFrame:
    if judge_id is None:
        if "judge_id" in df.columns and df["judge_id"].nunique() > 1:
            ids = ", ".join(sorted(df["judge_id"].unique()))
            raise UserError(
                f"{what} holds several judges ({ids}); pick one with --judge-id / --reference-judge-id"
            )
        return df
    if "judge_id" not in df.columns or judge_id not in set(df["judge_id"]):
        raise UserError(f"{what} has no rows with judge_id {judge_id!r}")
    return df[df["judge_id"] == judge_id]


def register(app: typer.Typer) -> None:
    """Add ``audit``, ``pairwise`` and ``gsm8k-check`` to the ``judge`` sub-app."""

    @app.command("audit")
    def audit_cmd(
        workspace: WorkspaceOpt = None,
        judgments: Annotated[
            str, typer.Option(help="judgments: workspace table name or a file")
        ] = "judgments",
        judge_id: Annotated[str | None, typer.Option(help="audit only this judge_id")] = None,
        reference: Annotated[
            str | None, typer.Option(help="reference: file or table with trace_id and a column per dimension")
        ] = None,
        reference_judge_id: Annotated[
            str | None,
            typer.Option(help="take the reference from these rows of the judgments (e.g. arith-oracle)"),
        ] = None,
        reference_kind: Annotated[
            str, typer.Option(help="'scores' (1-5 per dimension) or 'correctness'")
        ] = "scores",
        reference_column: Annotated[
            str | None,
            typer.Option(help="one reference column for every dimension (e.g. a human label, or 'outcome')"),
        ] = None,
        lengths: Annotated[
            str | None, typer.Option(help="table/file with trace_id and n_tokens (default: the traces table)")
        ] = None,
        pairwise: Annotated[str | None, typer.Option(help="pairwise judgments file (position bias)")] = None,
        rubric_path: Annotated[
            str, typer.Option("--rubric", help="rubric naming the dimensions")
        ] = "default",
        simulate_noise: Annotated[
            float | None,
            typer.Option(help="audit a synthetic judge: the reference + Gaussian noise of this SD"),
        ] = None,
        simulate_length_bias: Annotated[
            float, typer.Option(help="synthetic judge: points added per 100 length units above the mean")
        ] = 0.0,
        out: Annotated[Path | None, typer.Option(help="folder for audit.csv, audit.md and PNGs")] = None,
    ) -> None:
        """Audit a judge against a reference: Spearman, weighted kappa, repeats, length and position bias."""
        from rich.console import Console
        from rich.table import Table

        from prefdelta.judge import audit as audit_mod
        from prefdelta.judge.rubric import load_rubric
        from prefdelta.workspace import Workspace

        ws = Workspace(workspace)
        rubric = load_rubric(rubric_path)
        dims = list(rubric.names)
        scale = (rubric.scale.min, rubric.scale.max)
        # the columns the reference is read from; checked in whichever file holds them
        ref_scores = ([reference_column] if reference_column else dims) if reference_kind == "scores" else []
        ref_outcomes = [reference_column or "outcome"] if reference_kind == "correctness" else []
        in_table = reference is None
        table = read_frame(
            judgments,
            ws.root,
            "judgments",
            lambda rs: validate.audit_judgment_rows(
                rs,
                list(dict.fromkeys(dims + (ref_scores if in_table else []))),
                scale,
                ref_outcomes if in_table else [],
            ),
        )
        if reference is not None:
            ref = read_frame(
                reference,
                ws.root,
                "reference",
                lambda rs: validate.reference_rows(rs, ref_scores, scale, ref_outcomes),
            )
        elif reference_judge_id is not None:
            ref = _select_judge(table, reference_judge_id, "the judgments")
        elif reference_kind == "correctness":
            ref = table
        else:
            raise UserError(
                "give a reference: --reference FILE, --reference-judge-id ID or --reference-kind correctness"
            )
        if "trace_id" not in ref.columns:
            raise UserError("the reference has no 'trace_id' column")
        if reference_kind == "scores":
            cols = [reference_column] if reference_column else dims
            missing = [c for c in cols if c not in ref.columns]
            if missing:
                raise UserError(f"the reference has no column '{missing[0]}'")
            ref = ref.groupby("trace_id")[cols].mean().reset_index()
        else:
            col = reference_column or "outcome"
            if col not in ref.columns:
                raise UserError(f"the reference has no correctness column '{col}'")
            ref = ref.groupby("trace_id")[[col]].max().astype(float).reset_index()

        length_series = None
        if lengths is not None or ws.has_table("traces"):
            ldf = read_frame(lengths or "traces", ws.root, "trace lengths", validate.length_rows)
            if "n_tokens" in ldf.columns:
                length_series = ldf.set_index("trace_id")["n_tokens"].astype(float)
            elif "text" in ldf.columns:
                length_series = ldf.set_index("trace_id")["text"].str.len().astype(float)

        if simulate_noise is not None:
            if length_series is None:
                raise UserError("--simulate-length-bias needs trace lengths (a traces table or --lengths)")
            judged = audit_mod.noisy_judge(
                ref, dims, length_series, simulate_noise, simulate_length_bias, repeats=3, seed=0
            )
        else:
            judged = _select_judge(table, judge_id, "the judgments")
            if reference_judge_id is not None and judge_id is None:
                judged = table[table["judge_id"] != reference_judge_id]
                judged = _select_judge(judged, None, "the judgments (without the reference judge)")

        result = audit_mod.audit(judged, ref, dims, length_series, reference_kind, reference_column)
        pos = None
        if pairwise is not None:  # read (and checked) before anything is written
            pairs = read_frame(
                pairwise, ws.root, "pairwise judgments", lambda rs: validate.pairwise_rows(rs, dims)
            )
            pos = audit_mod.position_bias(pairs, dims)
        out_dir = out or ws.reports_dir / "judge_audit"
        out_dir.mkdir(parents=True, exist_ok=True)
        result.to_csv(out_dir / "audit.csv", index=False)
        text = result.to_markdown(index=False, floatfmt=".3f") if _has_tabulate() else result.to_string()
        if pos is not None:
            pos.to_csv(out_dir / "position_bias.csv", index=False)
            text += "\n\n" + (
                pos.to_markdown(index=False, floatfmt=".3f") if _has_tabulate() else pos.to_string()
            )
        (out_dir / "audit.md").write_text(text + "\n")
        pngs: list[Path] = []
        if reference_kind == "scores":
            pngs = audit_mod.plot_audit(result, judged, ref, dims, out_dir, length_series, reference_column)

        console = Console()
        shown = Table(title="judge audit")
        for c in result.columns:
            shown.add_column(c)
        for row in result.itertuples(index=False):
            shown.add_row(*[f"{v:.3f}" if isinstance(v, float) else str(v) for v in row])
        console.print(shown)
        if pos is not None:
            console.print(pos.to_string(index=False))
        console.print(f"wrote {out_dir / 'audit.csv'}, {out_dir / 'audit.md'} and {len(pngs)} plots")

    @app.command("pairwise")
    def pairwise_cmd(
        config: ConfigOpt = None,
        workspace: WorkspaceOpt = None,
        limit: Annotated[int | None, typer.Option(help="judge only the first N pairs")] = None,
        table: Annotated[str, typer.Option(help="output table in the workspace")] = "pairwise_judgments",
    ) -> None:
        """Judge each pair's two traces side by side, in both orders (for position-bias audits)."""
        from prefdelta.judge.cache import ResponseCache
        from prefdelta.judge.llm import LLMJudge, LLMJudgeOptions, PairItem
        from prefdelta.judge.rubric import load_rubric
        from prefdelta.judge.stage import make_backend
        from prefdelta.study.servers import ServerPool

        cfg, ws = stage_spec(config, workspace)
        llm_judges = [j for j in cfg.judge.judges if j.llm is not None]
        if not llm_judges:
            raise UserError("judge pairwise needs an llm judge in the spec (judge: {kind: llm, llm: {...}})")
        spec = llm_judges[0]
        settings = spec.llm
        assert settings is not None
        pairs = ws.read_table("pairs", required_by="judge pairwise")
        if limit is not None:
            pairs = pairs.head(limit)
        texts = ws.read_table("traces", required_by="judge pairwise").set_index("trace_id")["text"]
        problems = ws.read_table("problems", required_by="judge pairwise").set_index("problem_id")
        text_col = "prompt"
        items = [
            PairItem(
                pid,
                str(problems.at[prob, text_col]),
                str(texts[c]),
                str(texts[r]),
                str(problems.at[prob, "reference_answer"]),
            )
            for pid, prob, c, r in zip(
                pairs["pair_id"],
                pairs["problem_id"],
                pairs["chosen_trace_id"],
                pairs["rejected_trace_id"],
                strict=True,
            )
        ]
        options = LLMJudgeOptions(
            repeats=settings.repeats,
            temperature=settings.temperature,
            max_tokens=settings.max_tokens,
            retries=settings.retries,
            structured=settings.structured,
            chat=settings.chat,
            seed=settings.seed,
        )
        cache = ResponseCache(ws.root / cfg.judge.cache)
        try:
            with ServerPool(cfg.servers, ws.root / "logs" / "servers") as servers:
                judge = LLMJudge(
                    make_backend(settings, servers),
                    load_rubric(settings.rubric),
                    spec.judge_id,
                    cache,
                    options,
                )
                df = judge.compare(items)
        finally:
            cache.close()
        ws.write_table(table, df)
        typer.echo(f"{len(df)} pairwise judgments ({judge.requests_sent} requests) -> table '{table}'")

    @app.command("gsm8k-check")
    def gsm8k_check(
        solutions: Annotated[
            Path | None,
            typer.Argument(
                help="GSM8K model solutions file (the published example_model_solutions.jsonl)",
                metavar="FILE",
                show_default=False,
            ),
        ] = None,
        test_file: Annotated[
            Path | None,
            typer.Option(
                help="GSM8K test.jsonl whose questions the solutions answer (default: test.jsonl beside them)"
            ),
        ] = None,
        out: Annotated[Path | None, typer.Option(help="write per-trace rows to this Parquet file")] = None,
        data_dir: Annotated[Path | None, typer.Option(hidden=True, help="replaced by FILE")] = None,
    ) -> None:
        """Calculator checker + outcome grader on GSM8K's released 6B/175B model solutions, per generator.

        The rows (--out) carry trace_id and problem_id as `pairs import --gsm8k-solutions`
        gives them, the five dimensions on the 1-5 scale and each share (0-1) in <dimension>_share.
        """
        import pyarrow as pa

        from prefdelta.judge.gsm8k_check import check_rows, summarize
        from prefdelta.sources.gsm8k import read_model_solutions
        from prefdelta.workspace import atomic_write_bytes, parquet_bytes

        if data_dir is not None:
            example = data_dir / "gsm8k" / "model_solutions.jsonl"
            raise UserError(
                f"--data-dir is gone: pass the solutions file, prefdelta judge gsm8k-check {example} "
                "[--test-file FILE]"
            )
        if solutions is None:
            raise UserError("pass the solutions file: prefdelta judge gsm8k-check FILE [--test-file FILE]")
        problems, traces = read_model_solutions(solutions, test_file)
        rows = check_rows(problems, traces)
        if out is not None:
            atomic_write_bytes(out, parquet_bytes(pa.Table.from_pandas(rows, preserve_index=False)))
        typer.echo(summarize(rows).to_string(float_format=lambda v: f"{v:.3f}"))


def _has_tabulate() -> bool:
    try:
        import tabulate  # noqa: F401
    except ImportError:
        return False
    return True
