"""Extra ``prefdelta judge`` subcommands: ``audit``, ``pairwise`` and ``gsm8k-check``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import pandas as pd
import typer

from prefdelta.cli.common import ConfigOpt, WorkspaceOpt, stage_spec
from prefdelta.errors import UserError


def read_frame(spec: str, ws_root: Path | None) -> pd.DataFrame:
    """A table from a file (``.parquet``, ``.csv``, ``.jsonl``) or a workspace table name."""
    path = Path(spec)
    if path.suffix in (".parquet", ".csv", ".jsonl", ".json"):
        if not path.is_file():
            raise UserError(f"{path} not found")
        if path.suffix == ".parquet":
            return pd.read_parquet(path)
        if path.suffix == ".csv":
            return pd.read_csv(path)
        try:
            return pd.read_json(path, lines=path.suffix == ".jsonl")
        except ValueError as err:
            raise UserError(
                f"{path}: not valid JSON{'L' if path.suffix == '.jsonl' else ''}: {err}"
            ) from None
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
        dims = list(load_rubric(rubric_path).names)
        table = read_frame(judgments, ws.root)
        if reference is not None:
            ref = read_frame(reference, ws.root)
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
            ldf = read_frame(lengths or "traces", ws.root)
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
        out_dir = out or ws.reports_dir / "judge_audit"
        out_dir.mkdir(parents=True, exist_ok=True)
        result.to_csv(out_dir / "audit.csv", index=False)
        text = result.to_markdown(index=False, floatfmt=".3f") if _has_tabulate() else result.to_string()
        pos = None
        if pairwise is not None:
            pos = audit_mod.position_bias(read_frame(pairwise, ws.root), dims)
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
        data_dir: Annotated[
            Path | None, typer.Option(help="folder holding gsm8k/ (default: $PREFDELTA_DATA_DIR)")
        ] = None,
        out: Annotated[Path | None, typer.Option(help="write per-trace rows to this Parquet file")] = None,
    ) -> None:
        """Calculator checker + outcome grader on GSM8K's released 6B/175B model solutions, per generator."""
        from prefdelta.judge.calc import check_trace
        from prefdelta.judge.outcome import grade_gsm8k
        from prefdelta.sources.gsm8k import load_model_solutions

        problems, traces = load_model_solutions(data_dir)
        by_id = problems.set_index("problem_id")
        rows = []
        for pid, gen, text, label in zip(
            traces["problem_id"], traces["generator_id"], traces["text"], traces["is_correct"], strict=True
        ):
            p = by_id.loc[pid]
            report = check_trace(str(p["prompt"]), str(p["reference_solution"]), text)
            verdict = grade_gsm8k(text, str(p["reference_solution"]))
            rows.append(
                {"generator_id": gen, **report.as_dict(), "graded": verdict.correct, "is_correct": label}
            )
        df = pd.DataFrame(rows)
        if out is not None:
            df.to_parquet(out)
        summary = summarize_gsm8k_check(df)
        typer.echo(summary.to_string(float_format=lambda v: f"{v:.3f}"))


def summarize_gsm8k_check(df: pd.DataFrame) -> pd.DataFrame:
    """Per generator: mean share per dimension, arithmetic checked in/out of annotations, outcome agreement."""
    g = df.groupby("generator_id", sort=True)
    sums = g[
        [
            "annotations_ok",
            "n_annotations",
            "written_ok",
            "n_written",
            "text_equations_ok",
            "n_text_equations",
        ]
    ].sum()
    out = g[
        ["factuality", "strategy_coherence", "step_coherence", "numerical_precision", "signal_to_noise"]
    ].mean()
    out["annotation_arith_ok"] = sums["annotations_ok"] / sums["n_annotations"]
    out["written_after_annotation_ok"] = sums["written_ok"] / sums["n_written"]
    out["prose_equations_ok"] = sums["text_equations_ok"] / sums["n_text_equations"]
    out["n_prose_equations"] = sums["n_text_equations"]
    out["accuracy_graded"] = g["graded"].mean()
    out["accuracy_file"] = g["is_correct"].mean()
    out["grader_agreement"] = g.apply(
        lambda x: float((x["graded"] == x["is_correct"]).mean()), include_groups=False
    )
    out["n"] = g.size()
    return out


def _has_tabulate() -> bool:
    try:
        import tabulate  # noqa: F401
    except ImportError:
        return False
    return True
