"""Stage: report — the analysis tables, their plots, ``reports/report.html`` and ``reports/summary.md``.

Tables first (:mod:`prefdelta.report.analysis`, written as CSV under ``reports/tables``),
then plots (:mod:`prefdelta.report.plots`), then the self-contained HTML page and the
Markdown summary, which both render those tables.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from prefdelta.judge.dimensions import DIMENSIONS
from prefdelta.report import analysis, markdown
from prefdelta.study.stage import Estimate, Stage, StageContext, StageOutput
from prefdelta.workspace import Workspace, atomic_write_text

if TYPE_CHECKING:
    from prefdelta.study.spec import StudyConfig

INPUTS = ("generators", "pairs", "selections", "runs", "evals")
OPTIONAL = ("eval_samples", "judgments", "traces", "problems")


def suite_domains(evals: pd.DataFrame) -> dict[str, str]:
    rows = evals[evals["level"].fillna("suite") == "suite"] if "level" in evals else evals
    return dict(zip(rows["suite"], rows["domain"], strict=False))


def generator_table(evals: pd.DataFrame, models: list[str]) -> pd.DataFrame:
    """Suite-level accuracy with its interval for each of ``models`` (generators, student)."""
    rows = evals[evals["level"].fillna("suite") == "suite"] if "level" in evals else evals
    rows = rows[rows["model_id"].isin(models)]
    rows = rows.assign(order=rows["model_id"].map({m: i for i, m in enumerate(models)})).sort_values(
        ["order", "suite"]
    )
    return rows[["model_id", "suite", "domain", "value", "ci_low", "ci_high", "n"]].reset_index(drop=True)


def wide(table: pd.DataFrame) -> pd.DataFrame:
    """The generator table as model × suite cells ``acc [lo, hi]`` (percent), in model order."""
    if table.empty:
        return table
    cell = table.assign(
        cell=[
            f"{100 * v:.1f} [{100 * lo:.1f}, {100 * hi:.1f}]"
            for v, lo, hi in zip(table["value"], table["ci_low"], table["ci_high"], strict=True)
        ],
        column=table["suite"] + " (" + table["domain"] + ")",
    )
    out = cell.pivot(index="model_id", columns="column", values="cell").reindex(
        list(dict.fromkeys(table["model_id"]))
    )
    return out.reset_index().rename(columns={"model_id": "model"})


def judge_audit(judgments: pd.DataFrame | None, traces: pd.DataFrame | None) -> pd.DataFrame | None:
    """Each judge against the exact oracle, where the world has one (the arith oracle)."""
    if judgments is None or "arith-oracle" not in set(judgments["judge_id"]):
        return None
    from prefdelta.judge.audit import audit

    ref = (
        judgments[judgments["judge_id"] == "arith-oracle"]
        .groupby("trace_id")[list(DIMENSIONS)]
        .mean()
        .reset_index()
    )
    lengths = traces.set_index("trace_id")["text"].str.len().astype(float) if traces is not None else None
    frames = []
    for jid, g in judgments.groupby("judge_id"):
        if jid == "arith-oracle":
            continue
        frames.append(audit(g, ref, list(DIMENSIONS), lengths).assign(judge_id=jid))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def build(ws: Workspace, cfg: StudyConfig) -> dict[str, object]:
    """Every table of the report (pure given the workspace tables)."""
    t = {name: ws.read_table(name, required_by="report") for name in INPUTS}
    for name in OPTIONAL:
        t[name] = ws.read_table(name) if ws.has_table(name) else None
    runs, evals = t["runs"], t["evals"]
    domains = suite_domains(evals)
    suites = list(domains)
    student = str(runs["base_model"].iloc[0]) if len(runs) else str(cfg.student.model)
    out: dict[str, object] = {"tables": t, "domains": domains, "student": student}
    samples = t["eval_samples"]
    if len(runs) and samples is not None and domains:
        gains = analysis.compute_gains(runs, samples, student, domains)
        cells = analysis.cell_table(gains, runs, t["selections"], t["pairs"], suites)
        contrasts = analysis.contrast_table(gains, cells)
        slopes = analysis.slope_table(gains, cells)
        budget = analysis.budget_table(cells, runs)
        out.update(
            budget=budget,
            budget_contrasts=analysis.budget_contrasts(gains, budget),
            cells=cells,
            slopes=slopes,
            grid=analysis.grid_table(cells),
            fractions=analysis.fraction_table(gains, cells),
            regression=analysis.regression_table(cells),
            contrasts=contrasts,
            verdicts=analysis.verdicts(slopes, contrasts, cells),
        )
    gens = list(t["generators"]["generator_id"])
    out["generator_table"] = generator_table(evals, [*gens, *([student] if student not in gens else [])])
    out["audit"] = judge_audit(t["judgments"], t["traces"])
    return out


def body(ws: Workspace, cfg: StudyConfig, ctx: StageContext) -> StageOutput:
    from prefdelta.pairs.stats import plot_histograms
    from prefdelta.report import html as page
    from prefdelta.report import plots
    from prefdelta.study.spec import dump_spec

    r = build(ws, cfg)
    tables: dict[str, pd.DataFrame] = r["tables"]  # type: ignore[assignment]
    out_dir = ws.reports_dir
    tab_dir = out_dir / "tables"
    tab_dir.mkdir(parents=True, exist_ok=True)
    for name in (
        "cells",
        "slopes",
        "grid",
        "fractions",
        "regression",
        "contrasts",
        "verdicts",
        "budget",
        "budget_contrasts",
        "generator_table",
        "audit",
    ):
        df = r.get(name)
        if isinstance(df, pd.DataFrame):
            atomic_write_text(tab_dir / f"{name}.csv", df.to_csv(index=False))
    fig = out_dir / "figures"
    cells = r.get("cells")
    contrasts = r.get("contrasts")
    metrics = {}
    for run in tables["runs"].itertuples():
        path = ws.resolve(run.metrics) if hasattr(run, "metrics") else None
        if path is not None and Path(path).is_file():
            metrics[run.run_id] = pd.DataFrame([json.loads(x) for x in Path(path).read_text().splitlines()])
    figures = {
        "generators": plots.plot_generators(r["generator_table"], fig / "generators.png"),  # type: ignore[arg-type]
        "ladders": plots.plot_ladders(cells, fig / "ladders.png") if cells is not None else None,
        "grid": plots.plot_grid(cells, fig / "grid.png") if cells is not None else None,
        "outcome": plots.plot_contrasts(
            contrasts, fig / "outcome_vs_process.png", "outcome|quadrant", "outcome vs process, quadrants"
        )
        if contrasts is not None
        else None,
        "selection": plots.plot_contrasts(
            contrasts, fig / "top_vs_controls.png", r"− (?:random|all)$", "top fraction vs its controls"
        )
        if contrasts is not None
        else None,
        "algorithms": plots.plot_contrasts(contrasts, fig / "kto_vs_dpo.png", "KTO − DPO", "KTO vs DPO")
        if contrasts is not None
        else None,
        "deltas": plot_histograms(tables["pairs"], fig / "deltas.png") if len(tables["pairs"]) else None,
        "curves": plots.plot_training_curves(tables["runs"], metrics, fig / "training_curves.png"),
        "budget": plots.plot_budget(r["budget"], fig / "budget.png") if cells is not None else None,  # type: ignore[arg-type]
    }
    stage_seconds = {}
    for st in ("problems", "zoo", "generate", "judge", "pairs", "select", "train", "eval"):
        rec = ws.stage_record(st)
        if rec and "seconds" in rec:
            stage_seconds[st] = float(rec["seconds"])
    hashes = {name: ws.table_hash(name) for name in (*INPUTS, *OPTIONAL) if ws.has_table(name)}
    sections = [
        ("Findings", page.verdict_html(r.get("verdicts", pd.DataFrame()))  # type: ignore[arg-type]
         + '<p class="note">Gains are in accuracy points against the untrained student, seeds pooled per problem, '
         "with 95% intervals from one paired bootstrap over problems (the same draw for every cell).</p>"),
        ("Generators and the student", page.image(figures["generators"], "accuracy of every generator")
         + page.table(wide(r["generator_table"]))),  # type: ignore[arg-type]
        ("Generator-level delta: ladders", page.image(figures["ladders"], "gain against generator gap")
         + page.table(None if cells is None else cells[cells["kind"] == "ladder"][
             ["design", "variant", "chosen", "rejected", "n_pairs", "seeds", "generator_gap", "onpolicy_chosen",
              "onpolicy_rejected", "gain_in", "gain_in_lo", "gain_in_hi", "gain_out", "gain_out_lo", "gain_out_hi"]],
             ("gain_", "generator_gap"))
         + "<p>Slopes (gain per unit of gap):</p>" + page.table(r.get("slopes"))),  # type: ignore[arg-type]
        ("Sample-level delta: grids", page.image(figures["grid"], "gain against fraction")
         + page.table(r.get("grid"), ("gain_",)) + "<p>Smallest top fraction reaching 95% of the full pool's gain:</p>"  # type: ignore[arg-type]
         + page.table(r.get("fractions"), ("full_gain",))  # type: ignore[arg-type]
         + "<p>Which delta predicts a cell's in-domain gain (standardised OLS coefficients):</p>"
         + page.table(r.get("regression"))),  # type: ignore[arg-type]
        *([("Dynamic selection: accuracy vs pair-updates", page.budget_html(
            figures["budget"], r["budget"], r["budget_contrasts"]))]  # type: ignore[arg-type]
          if isinstance(r.get("budget"), pd.DataFrame) and len(r["budget"]) else []),  # type: ignore[arg-type]
        ("Contrasts", page.image(figures["selection"], "top vs controls") + page.image(figures["outcome"], "outcome vs process")
         + page.image(figures["algorithms"], "KTO vs DPO") + page.table(contrasts, ("in", "out"))),  # type: ignore[arg-type]
        ("Pairs", page.image(figures["deltas"], "delta distributions")),
        ("Training", page.image(figures["curves"], "training curves")),
        ("Judge audit against the oracle", page.table(r.get("audit"))  # type: ignore[arg-type]
         if r.get("audit") is not None else '<p class="note">No exact oracle in this world, or no other judge to audit.</p>'),
        ("Spec", f"<pre>{page.html.escape(dump_spec(cfg))}</pre>"),
        ("Provenance", page.table(page.provenance(ws.root, hashes, stage_seconds))),
    ]  # fmt: skip
    html_path = out_dir / "report.html"
    atomic_write_text(html_path, page.page(f"prefdelta study: {cfg.name}", sections))
    text = markdown.summary_markdown(cfg, *(tables[n] for n in INPUTS), eval_samples=tables["eval_samples"],
                                     judgments=tables["judgments"], traces=tables["traces"])  # fmt: skip
    if isinstance(r.get("verdicts"), pd.DataFrame) and len(r["verdicts"]):  # type: ignore[arg-type]
        lines = [
            f"- **{v.finding}** ({v.variant}): {v.verdict} — {v.numbers}" for v in r["verdicts"].itertuples()
        ]  # type: ignore[union-attr]
        text += "\n## Reference findings\n\n" + "\n".join(lines) + "\n"
    if isinstance(r.get("budget"), pd.DataFrame) and len(r["budget"]):  # type: ignore[arg-type]
        text += markdown.budget_markdown(r["budget"], r["budget_contrasts"])  # type: ignore[arg-type]
    md_path = out_dir / "summary.md"
    atomic_write_text(md_path, text)
    return StageOutput([], [html_path, md_path], f"→ {html_path}")


def _settings(cfg: StudyConfig) -> dict[str, object]:
    return {"spec": cfg.model_dump(mode="json"), "dims": DIMENSIONS}


STAGE = Stage(
    name="report",
    inputs=INPUTS,
    optional_inputs=OPTIONAL,
    outputs=(),
    sections=(),
    body=body,
    help="Write the study's report: the analysis tables, reports/report.html and reports/summary.md.",
    estimate=lambda ws, cfg: Estimate(note="reports/report.html, reports/summary.md"),
    settings=_settings,
)
