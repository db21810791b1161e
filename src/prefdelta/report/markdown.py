"""The Markdown summary of a study: generators, pairs, selections, and what training did.

Results are reported as measured: when a selection does not beat its control, or DPO
lowers accuracy, the summary says so with the numbers.
"""

from __future__ import annotations

import pandas as pd

from prefdelta.evaluate.stats import paired_bootstrap_ci
from prefdelta.judge.dimensions import DIMENSIONS
from prefdelta.pairs.config import QUADRANTS
from prefdelta.select.strategies import GEN_PREFIX
from prefdelta.study.spec import StudyConfig


def _pct(x: float) -> str:
    return f"{100 * x:.1f}"


def _acc_cell(evals: pd.DataFrame, model_id: str, suite: str) -> str:
    row = evals[(evals["model_id"] == model_id) & (evals["suite"] == suite)]
    if row.empty:
        return "–"
    r = row.iloc[0]
    return f"{_pct(r['value'])} [{_pct(r['ci_low'])}, {_pct(r['ci_high'])}]"


def _params(value: object) -> str:
    try:
        v = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return "–"
    if v != v:
        return "–"
    return f"{v / 1e9:.1f}B" if v >= 1e9 else (f"{v / 1e6:.0f}M" if v >= 1e6 else f"{int(v):,}")


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
    eval_samples: pd.DataFrame | None = None,
    judgments: pd.DataFrame | None = None,
    traces: pd.DataFrame | None = None,
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
                _params(g["params"]),
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
    if not ladder:  # generators not evaluated on the suites (eval.include): their capability
        cap = generators.set_index("generator_id")["capability"].dropna()
        if len(cap):
            ladder.append(
                f"capability on the pair problems: strongest {cap.idxmax()} {_pct(cap.max())}% vs weakest "
                f"{cap.idxmin()} {_pct(cap.min())}% (gap {_pct(cap.max() - cap.min())} points)"
            )
    out += ["Capability ladder — " + ("; ".join(ladder) or "not measured") + ".", ""]

    if traces is not None and len(traces):
        out += ["Sample traces (the first trace of each generator):", ""]
        for gid, t in traces.sort_values("trace_id").groupby("generator_id", sort=True):
            text = str(t["text"].iloc[0]).strip().replace("\n", " ⏎ ")
            out += [f"- `{gid}` on `{t['problem_id'].iloc[0]}`: {text[:300]}{'…' if len(text) > 300 else ''}"]
        out += [""]
    if judgments is not None and len(judgments):
        out += _judges_section(judgments)

    out += [
        "## Pairs",
        "",
        f"{len(pairs)} {_pairs_description(cfg)}.",
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

    gaps = {
        f"{GEN_PREFIX}{a}>{b}": float(g)
        for (a, b), g in pairs.groupby(["chosen_generator", "rejected_generator"])["generator_gap"]
        .first()
        .items()
    }
    if len(runs):
        out += _training_section(cfg, runs, evals, eval_samples, suites, suite_h, gaps)
    else:
        out += ["## Training", "", "No student was trained (the spec names none).", ""]
    return "\n".join(out)


def _judges_section(judgments: pd.DataFrame) -> list[str]:
    """Judgments and error rows per judge, with the commonest reasons."""
    rows = []
    for jid, g in judgments.groupby("judge_id", sort=False):
        err = g["error"].dropna() if "error" in g else pd.Series(dtype=str)
        err = err[err.astype(str) != ""]
        reasons = err.astype(str).str.slice(0, 60).value_counts().head(3)
        why = "; ".join(f"{r} ({n})" for r, n in reasons.items()) or "–"
        rows.append([str(jid), str(len(g)), str(len(err)), f"{100 * len(err) / max(len(g), 1):.1f}", why])
    return [
        "## Judges",
        "",
        _table(["judge", "judgments", "error rows", "error %", "commonest reasons"], rows),
        "",
    ]


def _pairs_description(cfg: StudyConfig) -> str:
    pc = cfg.pairs
    what = {
        "cross_generator": "cross-generator pairs (chosen from the more capable generator",
        "within_generator": "within-generator pairs (best against worst sample of one generator",
        "correctness": "correctness pairs (a correct trace against an incorrect one",
    }[pc.strategy]
    if pc.chosen:
        what += "; chosen side: " + ", ".join(pc.chosen)
    if pc.rejected:
        what += "; rejected side: " + ", ".join(pc.rejected)
    if set(pc.quadrants) != set(QUADRANTS):
        what += "; quadrants " + ", ".join(pc.quadrants)
    return what + ")"


def _hyper_text(vc) -> str:
    text = f"{vc.algorithm.upper()}"
    if vc.algorithm == "dpo" and vc.loss_type != "sigmoid":
        text += f" ({vc.loss_type})"
    text += (
        f", β={vc.beta}, lr={vc.lr}, epochs={vc.epochs}, batch {vc.batch_size}, NLL weight {vc.nll_weight}"
    )
    if vc.algorithm == "kto" and (vc.desirable_weight, vc.undesirable_weight) != (1.0, 1.0):
        text += f", λD={vc.desirable_weight}, λU={vc.undesirable_weight}"
    return text


def _per_problem(eval_samples: pd.DataFrame, model_ids: list[str], suite: str) -> pd.Series | None:
    """Per-problem correctness of ``model_ids`` on ``suite``, averaged over the models (seeds)."""
    if "correct" not in eval_samples.columns or "problem_id" not in eval_samples.columns:
        return None
    sub = eval_samples[eval_samples["model_id"].isin(model_ids) & (eval_samples["suite"] == suite)]
    if sub.empty or sub["model_id"].nunique() != len(model_ids):
        return None
    return sub.assign(correct=sub["correct"].astype(float)).groupby("problem_id")["correct"].mean()


def _delta(a: pd.Series | None, b: pd.Series | None) -> tuple[float, float, float] | None:
    if a is None or b is None:
        return None
    common = a.index.intersection(b.index)
    if len(common) == 0:
        return None
    return paired_bootstrap_ci(a.loc[common].to_numpy(), b.loc[common].to_numpy())


def _delta_text(d: tuple[float, float, float] | None) -> str:
    if d is None:
        return "–"
    return f"{100 * d[0]:+.1f} [{100 * d[1]:+.1f}, {100 * d[2]:+.1f}]"


def _verdict(d: tuple[float, float, float] | None) -> str:
    if d is None:
        return "not measured"
    if d[1] > 0:
        return "a gain (interval above 0)"
    if d[2] < 0:
        return "a loss (interval below 0)"
    return "not distinguishable from 0"


def _training_section(
    cfg: StudyConfig,
    runs: pd.DataFrame,
    evals: pd.DataFrame,
    eval_samples: pd.DataFrame | None,
    suites: list[str],
    suite_h: list[str],
    gaps: dict[str, float] | None = None,
) -> list[str]:
    """Before/after table per (variant, selection), seeds averaged, with paired intervals."""
    tc = cfg.train
    student = (
        str(runs["base_model"].iloc[0]) if len(runs) and "base_model" in runs else str(cfg.student.model)
    )
    variants = tc.hyper_sets()
    samples = eval_samples if eval_samples is not None else pd.DataFrame(columns=["model_id", "suite"])
    if "variant" not in runs.columns:
        runs = runs.assign(variant=runs["algorithm"])
    out = [
        "## Student before and after preference training",
        "",
        f"Student `{student}` (also the reference model). Runs: "
        + "; ".join(f"`{name}` = {_hyper_text(vc)}" for name, vc in variants.items())
        + ". "
        + (
            f"Seeds {', '.join(map(str, tc.seeds))}: accuracies are means over seeds (range in brackets); "
            if len(tc.seeds) > 1
            else f"One seed ({tc.seeds[0]}): a single run per row, so read the intervals with care; "
        )
        + "Δ is the difference against the base student in points with a paired-bootstrap 95% interval "
        "(problems resampled, seeds pooled).",
        "",
    ]
    header = ["model", "pairs", "seeds"]
    for s, h in zip(suites, suite_h, strict=True):
        header += [h.replace(" [95% CI]", ""), f"Δ {s} [95% CI]"]
    rows = [["before (base)", "–", "–"]]
    for s in suites:
        rows[0] += [_acc_cell(evals, student, s), "–"]
    base = {s: _per_problem(samples, [student], s) for s in suites}
    per_run: dict[tuple[str, str], dict[str, pd.Series | None]] = {}
    against_base: dict[tuple[str, str], dict[str, tuple[float, float, float] | None]] = {}
    findings = []
    for (variant, selection_id), g in runs.groupby(["variant", "selection_id"], sort=False):
        ids = list(g["run_id"])
        row = [f"after {variant} on {selection_id}", str(int(g["n_pairs"].iloc[0])), str(len(ids))]
        run_key = (variant, g["strategy"].iloc[0])
        per_run[run_key] = {s: _per_problem(samples, ids, s) for s in suites}
        against_base[run_key] = {s: _delta(base[s], per_run[run_key][s]) for s in suites}
        parts = []
        for s in suites:
            vals = evals[evals["model_id"].isin(ids) & (evals["suite"] == s)]["value"]
            acc = (
                f"{_pct(vals.mean())} [{_pct(vals.min())}–{_pct(vals.max())}]"
                if len(vals) > 1
                else (_pct(vals.mean()) if len(vals) else "–")
            )
            d = against_base[run_key][s]
            row += [acc, _delta_text(d)]
            parts.append(f"{s} {_delta_text(d)} points, {_verdict(d)}")
        rows.append(row)
        findings.append(f"- `{variant}` on `{selection_id}`: " + "; ".join(parts) + ".")
    out += [_table(header, rows), ""]
    out += ["As measured (no effect is claimed beyond these numbers and their intervals):", "", *findings, ""]
    contrasts = []
    for variant in variants:
        for a, b in (("random", "top"), ("all", "top")):
            if (variant, a) in per_run and (variant, b) in per_run:
                parts = [
                    f"{s} {_delta_text(_delta(per_run[(variant, a)][s], per_run[(variant, b)][s]))} points"
                    for s in suites
                ]
                contrasts.append(f"- `{variant}`: {b} − {a}: " + "; ".join(parts) + ".")
    if contrasts:
        out += ["Selections against each other (paired, seeds pooled):", "", *contrasts, ""]
    gen_rows = []
    for variant in variants:
        for strategy, gap in sorted((gaps or {}).items(), key=lambda x: x[1]):
            if (variant, strategy) in against_base:
                gen_rows.append(
                    [
                        variant,
                        strategy.removeprefix(GEN_PREFIX).replace(">", " > "),
                        _pct(gap),
                        *[_delta_text(against_base[(variant, strategy)][s]) for s in suites],
                    ]
                )
    if gen_rows:
        out += [
            "Generator-level delta: the same number of pairs from each generator pair, by capability gap:",
            "",
            _table(
                ["run", "chosen > rejected", "generator gap (points)", *[f"Δ {s} [95% CI]" for s in suites]],
                gen_rows,
            ),
            "",
        ]
    return out


def budget_markdown(budget: pd.DataFrame, contrasts: pd.DataFrame) -> str:
    """Accuracy vs pair-updates per strategy (dynamic and static) and dynamic minus each
    static strategy at equal budget, as measured, with paired 95% intervals."""

    def ci(p: float, lo: float, hi: float) -> str:
        return f"{100 * p:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}]" if p == p else "–"

    rows = [
        [r.algorithm, r.curve, str(r.pair_updates), str(r.seeds), ci(r.gain_in, r.gain_in_lo, r.gain_in_hi),
         ci(r.gain_out, r.gain_out_lo, r.gain_out_hi)]
        for r in budget.itertuples()
    ]  # fmt: skip
    out = [
        "",
        "## Dynamic selection: accuracy vs pair-updates",
        "",
        "Gain over the student in points, seeds pooled per problem, paired-bootstrap 95% intervals; "
        "every strategy at the same budgets of pair-updates (pairs per epoch × epochs).",
        "",
        _table(["algorithm", "strategy", "pair-updates", "seeds", "Δ in-domain", "Δ out-of-domain"], rows),
        "",
    ]
    if len(contrasts):
        crow = [
            [str(c["algorithm"]), str(c["contrast"]), str(c["pair_updates"]), ci(c["in"], c["in_lo"], c["in_hi"]),
             ci(c["out"], c["out_lo"], c["out_hi"])]
            for c in contrasts.to_dict("records")
        ]  # fmt: skip
        out += [
            "At equal budget (paired):",
            "",
            _table(["algorithm", "contrast", "pair-updates", "in-domain", "out-of-domain"], crow),
            "",
        ]
    return "\n".join(out)
