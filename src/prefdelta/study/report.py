"""The Markdown summary of a study: generators, pairs, selections, and what training did.

Results are reported as measured: when a selection does not beat its control, or DPO
lowers accuracy, the summary says so with the numbers.
"""

from __future__ import annotations

import pandas as pd

from prefdelta.config import StudyConfig
from prefdelta.judge.dimensions import DIMENSIONS


def _pct(x: float) -> str:
    return f"{100 * x:.1f}"


def _acc_cell(evals: pd.DataFrame, model_id: str, suite: str) -> str:
    row = evals[(evals["model_id"] == model_id) & (evals["suite"] == suite)]
    if row.empty:
        return "–"
    r = row.iloc[0]
    return f"{_pct(r['value'])} [{_pct(r['ci_low'])}, {_pct(r['ci_high'])}]"


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def summary_markdown(
    cfg: StudyConfig,
    generators: pd.DataFrame,
    pairs: pd.DataFrame,
    selections: pd.DataFrame,
    runs: pd.DataFrame,
    evals: pd.DataFrame,
) -> str:
    if "level" in evals.columns:  # benchmark suites add per-benchmark rows; the summary shows suites
        evals = evals[evals["level"].fillna("suite").eq("suite")]
    evals = evals[evals["suite"].ne("lm-eval")]
    suites = list(dict.fromkeys(evals["suite"]))
    domain = dict(zip(evals["suite"], evals["domain"], strict=False))
    suite_h = [f"{s} ({'in' if domain[s] == 'in' else 'out-of'}-domain) acc % [95% CI]" for s in suites]
    out = [f"# prefdelta study: {cfg.name}", ""]

    out += [
        "## Generators",
        "",
        "Capability = accuracy of the sampled traces on the pair problems "
        f"(temperature {cfg.generate.temperature}); suite accuracies are greedy.",
        "",
    ]
    rows = []
    for _, g in generators.sort_values("capability", ascending=False).iterrows():
        rows.append(
            [
                g["generator_id"],
                g["family"],
                f"{int(g['params']):,}",
                _pct(g["capability"]),
                *[_acc_cell(evals, g["generator_id"], s) for s in suites],
            ]
        )
    out += [_table(["generator", "family", "params", "capability %", *suite_h], rows), ""]

    ge = evals[evals["model_id"].isin(generators["generator_id"])]
    ladder = []
    for s in suites:
        v = ge[ge["suite"] == s].set_index("model_id")["value"]
        if len(v):
            ladder.append(
                f"{s}: strongest {v.idxmax()} {_pct(v.max())}% vs weakest {v.idxmin()} "
                f"{_pct(v.min())}% (gap {_pct(v.max() - v.min())} points)"
            )
    out += ["Capability ladder — " + "; ".join(ladder) + ".", ""]

    out += [
        "## Pairs",
        "",
        f"{len(pairs)} cross-generator pairs (chosen from the more capable generator).",
        "",
    ]
    rows = []
    for d in (*DIMENSIONS, "aggregate"):
        col = pairs[f"delta_{d}"]
        rows.append([d, f"{col.mean():+.2f}", f"{col.std():.2f}", f"{(col < 0).mean() * 100:.1f}"])
    out += [_table(["dimension", "mean delta", "std", "% pairs chosen < rejected"], rows), ""]
    quad = pairs.groupby(["chosen_correct", "rejected_correct"]).size()
    qrows = [
        [("correct" if c else "wrong"), ("correct" if r else "wrong"), str(n)] for (c, r), n in quad.items()
    ]
    out += ["Correctness quadrants:", "", _table(["chosen", "rejected", "pairs"], qrows), ""]
    by_gap = pairs.groupby(["chosen_generator", "rejected_generator"]).agg(
        n=("pair_id", "size"),
        gap=("generator_gap", "first"),
        agg=("delta_aggregate", "mean"),
        step=("delta_step_coherence", "mean"),
    )
    grows = [
        [f"{a} > {b}", str(int(r["n"])), _pct(r["gap"]), f"{r['agg']:+.2f}", f"{r['step']:+.2f}"]
        for (a, b), r in by_gap.sort_values("gap", ascending=False).iterrows()
    ]
    out += [
        "Delta by generator pair:",
        "",
        _table(
            [
                "chosen > rejected",
                "pairs",
                "generator gap (points)",
                "mean Δ aggregate",
                "mean Δ step coherence",
            ],
            grows,
        ),
        "",
    ]

    out += ["## Selections", ""]
    srows = []
    for sid, g in selections.groupby("selection_id", sort=False):
        sub = pairs[pairs["pair_id"].isin(g["pair_id"])]
        srows.append(
            [
                sid,
                g["strategy"].iloc[0],
                str(len(g)),
                f"{sub['delta_step_coherence'].mean():+.2f}",
                f"{sub['delta_aggregate'].mean():+.2f}",
                _pct(sub["generator_gap"].mean()),
            ]
        )
    out += [
        _table(
            [
                "selection",
                "strategy",
                "pairs",
                "mean Δ step coherence",
                "mean Δ aggregate",
                "mean generator gap",
            ],
            srows,
        ),
        "",
    ]

    student = cfg.train.student
    out += [
        "## Student before and after DPO",
        "",
        f"Student `{student}` trained with DPO (β={cfg.train.beta}, lr={cfg.train.lr}, "
        f"epochs={cfg.train.epochs}, batch {cfg.train.batch_size}, NLL weight {cfg.train.nll_weight}).",
        "",
    ]
    rrows = [["before (base)", "–", *[_acc_cell(evals, student, s) for s in suites]]]
    for _, r in runs.iterrows():
        rrows.append(
            [
                f"after DPO on {r['selection_id']}",
                str(r["n_pairs"]),
                *[_acc_cell(evals, r["run_id"], s) for s in suites],
            ]
        )
    out += [_table(["model", "pairs", *suite_h], rrows), ""]
    base = evals[evals["model_id"] == student].set_index("suite")["value"]
    findings = []
    for _, r in runs.iterrows():
        after = evals[evals["model_id"] == r["run_id"]].set_index("suite")["value"]
        diffs = ", ".join(
            f"{s} {100 * (after.get(s, float('nan')) - base.get(s, float('nan'))):+.1f} points"
            for s in suites
        )
        findings.append(f"- DPO on `{r['selection_id']}`: {diffs} against the base student.")
    out += ["As measured (no effect is claimed beyond these numbers and their intervals):", "", *findings, ""]
    return "\n".join(out)
