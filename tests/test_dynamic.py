"""Dynamic delta selection: the score, rounds that re-select, the pair-update budget, the
trainer and the study with a dynamic variant, and the report's accuracy-vs-budget table."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from prefdelta.errors import UserError
from prefdelta.train.batching import plan_batches
from prefdelta.train.config import TrainConfig, TrainHyper
from prefdelta.train.dynamic import (
    DynamicRounds,
    budget_batches,
    cut_to_budget,
    round_budgets,
    round_scores,
    top_indices,
)
from prefdelta.train.logprobs import EncodedPair

ROOT = Path(__file__).resolve().parents[1]


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


# ---- the score -----------------------------------------------------------------------------------------
def test_score_is_the_delta_weighted_by_the_policys_remaining_error():
    deltas = torch.tensor([2.0, 2.0, 1.0, -1.0])
    margins = torch.tensor([0.0, 4.0, -2.0, -5.0])
    scores = round_scores(deltas, margins, margin_weight=1.0)
    expected = [d * _sigmoid(-m) for d, m in zip(deltas.tolist(), margins.tolist(), strict=True)]
    assert scores.tolist() == pytest.approx(expected, rel=1e-6)
    # pair 1 has the top delta but the policy already separates it (margin 4): it ranks
    # below pair 2, whose delta is half but which the policy still gets wrong
    assert top_indices(scores, 2) == [0, 2]
    # margin_weight 0 is the static ranking by delta (ties by position)
    assert round_scores(deltas, margins, 0.0).tolist() == deltas.tolist()
    assert top_indices(round_scores(deltas, margins, 0.0), 2) == [0, 1]
    # a larger weight punishes a separated pair more: squared error weight
    assert round_scores(deltas, margins, 2.0)[1] == pytest.approx(2.0 * _sigmoid(-4.0) ** 2, rel=1e-6)


def test_top_indices_break_ties_by_position():
    assert top_indices(torch.tensor([1.0, 3.0, 3.0, 3.0, 0.5]), 2) == [1, 2]
    assert top_indices(torch.tensor([0.0, 0.0, 0.0]), 3) == [0, 1, 2]


# ---- rounds -----------------------------------------------------------------------------------------------
def _dummy_pairs(n: int) -> list[EncodedPair]:
    return [EncodedPair([1, 2, 3], [4 + i, 0], [5 + i, 0]) for i in range(n)]


def test_a_round_reselects_when_a_pairs_margin_grows(tmp_path):
    hp = TrainHyper(epochs=2, batch_size=2, dynamic={"fraction": 0.5, "key": "aggregate"})
    deltas = [5.0, 4.0, 3.0, 2.0, 1.0, 0.0]
    rounds = DynamicRounds(_dummy_pairs(6), deltas, hp, tmp_path, main=True)
    first = rounds.next(torch.zeros(6), step=0)
    assert first.chosen == [0, 1, 2]  # the policy is the reference: the static top half
    assert sorted(i for b in first.batches for i in b) == [0, 1, 2]  # each once per round
    assert first.stats["round_mean_delta"] == pytest.approx(4.0)
    # the policy now separates pair 0 by a wide margin: it drops out, pair 3 comes in
    margins = torch.tensor([10.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    second = rounds.next(margins, step=2)
    assert second.chosen == [1, 2, 3]
    assert second.stats["round_mean_margin"] == 0.0 and second.stats["pool_mean_margin"] == pytest.approx(
        10 / 6
    )
    assert not rounds.remaining()
    lines = [json.loads(x) for x in (tmp_path / "rounds.jsonl").read_text().splitlines()]
    assert [(x["round"], x["step"], x["pairs"]) for x in lines] == [(0, 0, [0, 1, 2]), (1, 2, [1, 2, 3])]


def test_a_pool_without_deltas_is_refused(tmp_path):
    hp = TrainHyper(dynamic={"fraction": 0.5})
    with pytest.raises(ValueError, match="one delta per pair"):
        DynamicRounds(_dummy_pairs(3), [1.0, 2.0], hp, tmp_path, main=True)
    with pytest.raises(ValueError, match="finite delta"):
        DynamicRounds(_dummy_pairs(2), [1.0, float("nan")], hp, tmp_path, main=True)


# ---- the budget -----------------------------------------------------------------------------------------------
def test_budget_accounting_is_exact_and_equal_across_strategies():
    # no budget: the plan is the one the trainer always had (numerics unchanged)
    hp = TrainHyper(epochs=3, batch_size=4, seed=5)
    assert budget_batches(10, hp) == plan_batches(10, 4, 3, 5)
    # a budget of 25 pair-updates on 10 pairs: 3 passes, the last cut to 5 pairs
    cut = budget_batches(10, hp.model_copy(update={"pair_updates": 25}))
    assert sum(len(b) for b in cut) == 25
    counts = np.bincount([i for b in cut for i in b], minlength=10)
    assert set(counts) == {2, 3} and counts.sum() == 25
    assert cut == cut_to_budget(plan_batches(10, 4, 3, 5), 25)
    # the template's scheme: 300 pairs, 30% = 90 per round; budgets of 180, 360, 720
    for budget in (180, 360, 720):
        dyn = TrainHyper(batch_size=16, pair_updates=budget, dynamic={"fraction": 0.3})
        static = TrainHyper(batch_size=16, pair_updates=budget)
        assert round_budgets(300, dyn) == [90] * (budget // 90)
        assert sum(len(b) for b in budget_batches(90, static)) == budget  # static top / random 30%
        assert sum(len(b) for b in budget_batches(300, static)) == budget  # all pairs, 0.6-2.4 epochs
    # a budget that is not whole rounds: the last round is cut; every_epochs makes rounds longer
    assert round_budgets(300, TrainHyper(pair_updates=200, dynamic={"fraction": 0.3})) == [90, 90, 20]
    two = TrainHyper(pair_updates=720, dynamic={"fraction": 0.3, "every_epochs": 2})
    assert round_budgets(300, two) == [180] * 4
    # without pair_updates a dynamic run trains epochs rounds of its top fraction
    assert round_budgets(10, TrainHyper(epochs=3, dynamic={"fraction": 0.3})) == [3, 3, 3]


def test_total_batches_match_the_batches_the_rounds_make(tmp_path):
    hp = TrainHyper(batch_size=4, pair_updates=23, dynamic={"fraction": 0.5, "every_epochs": 2})
    rounds = DynamicRounds(_dummy_pairs(7), [float(i) for i in range(7)], hp, tmp_path, main=False)
    made = []
    while rounds.remaining():
        made += rounds.next(torch.zeros(7), step=len(made)).batches
    assert len(made) == rounds.total_batches
    assert sum(len(b) for b in made) == rounds.pair_updates == 23
    assert not (tmp_path / "rounds.jsonl").exists()  # only the main process writes


# ---- config ----------------------------------------------------------------------------------------------------
def test_config_errors_name_the_field():
    with pytest.raises(ValueError, match=r"variants\.dyn\.dynamic\.key: unknown delta key 'vibes'"):
        TrainConfig(variants={"dyn": {"dynamic": {"key": "vibes"}}})
    with pytest.raises(ValueError, match=r"variants\.dyn\.dynamic\.fraction"):
        TrainConfig(variants={"dyn": {"dynamic": {"fraction": 0}}})
    with pytest.raises(ValueError, match="dynamic: a dynamic run cannot resume"):
        TrainHyper(save_steps=5, dynamic={"fraction": 0.3})


def test_dynamic_needs_the_in_process_launcher():
    from conftest import spec_from, template_data
    from prefdelta.train.stage import check_launcher

    data = template_data("dynamic-selection")
    check_launcher(spec_from(data))
    data["train"]["launcher"] = {"kind": "accelerate", "config": "cpu_ddp_2"}
    with pytest.raises(UserError, match=r"train\.variants\.dyn180\.dynamic: .* in_process only"):
        check_launcher(spec_from(data))


def test_the_template_trains_dynamic_runs_on_the_pool_only(tmp_path):
    from conftest import spec_from, template_data
    from prefdelta.train.stage import estimate
    from prefdelta.workspace import Workspace

    cfg = spec_from(template_data("dynamic-selection"))
    # 3 static strategies (top, random, all) x 3 budgets + dynamic on all x 3 budgets, 3 seeds
    assert estimate(Workspace(tmp_path), cfg).counts["training runs"] == (9 + 3) * 3
    hypers = cfg.train.hyper_sets()
    assert {h.pair_updates for h in hypers.values()} == {180, 360, 720}
    assert all(h.dynamic.pool == "grid:grid:all" for n, h in hypers.items() if n.startswith("dyn"))


# ---- the trainer -----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pairs(arith_tokenizer):
    from prefdelta.train.logprobs import encode_pairs
    from prefdelta.worlds.arith import ArithSpec, make_problems, prompt_text, reference_trace

    problems = make_problems(ArithSpec(max_steps=3), 10, seed=21)
    prompts = [prompt_text(p.text) for p in problems]
    chosen = [reference_trace(p) for p in problems]
    rejected = [reference_trace(problems[(i + 3) % 10]) for i in range(10)]
    return encode_pairs(arith_tokenizer, prompts, chosen, rejected)[0]


DELTAS = [0.5, 3.0, 1.0, 2.0, 0.0, 2.5, 1.5, 0.2, 0.7, 1.2]


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


@pytest.mark.integration
def test_a_dynamic_run_that_never_reranks_is_the_static_run_on_its_top_pairs(
    tmp_path, trained_model_dir, pairs
):
    from prefdelta.train.trainer import train_preference

    hp = TrainHyper(lr=1e-3, epochs=2, batch_size=2, beta=0.5, nll_weight=0.3, seed=3)
    dyn = hp.model_copy(update={"dynamic": TrainHyper(dynamic={"fraction": 0.4, "every_epochs": 2}).dynamic})
    cache = tmp_path / "cache"
    train_preference(trained_model_dir, pairs, dyn, tmp_path / "dyn", ref_cache_root=cache, deltas=DELTAS)
    top = [1, 3, 5, 6]  # the 4 highest deltas, in pool order
    train_preference(
        trained_model_dir, [pairs[i] for i in top], hp, tmp_path / "static", ref_cache_root=cache
    )
    rounds = [json.loads(x) for x in (tmp_path / "dyn" / "rounds.jsonl").read_text().splitlines()]
    assert [r["pairs"] for r in rounds] == [top]
    assert abs(rounds[0]["round_mean_margin"]) < 1e-4  # the policy is the reference at round 0
    a, b = _weights(tmp_path / "dyn" / "final"), _weights(tmp_path / "static" / "final")
    assert all(torch.equal(a[k], b[k]) for k in a)
    lines = [json.loads(x) for x in (tmp_path / "static" / "metrics.jsonl").read_text().splitlines()]
    assert lines[-1]["pair_updates"] == 8 and "round" not in lines[-1]


@pytest.mark.integration
@pytest.mark.parametrize("algorithm", ["dpo", "kto", "simpo"])
def test_each_round_is_logged_in_the_runs_metrics(tmp_path, trained_model_dir, pairs, algorithm):
    """Every epoch a round: its size, mean delta and mean margin on each of its steps;
    KTO's mismatched reference log-probs are added per round, SimPO's margin needs none."""
    from prefdelta.train.trainer import train_preference

    hp = TrainHyper(algorithm=algorithm, lr=3e-3, epochs=3, batch_size=2, beta=0.5, dynamic={"fraction": 0.3})
    out = tmp_path / "run"
    train_preference(trained_model_dir, pairs, hp, out, ref_cache_root=tmp_path / "cache", deltas=DELTAS)
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [x["round"] for x in lines] == [0, 0, 1, 1, 2, 2]  # 3 pairs a round: 2 steps of 2 + 1
    assert {x["round_pairs"] for x in lines} == {3}
    assert [x["pair_updates"] for x in lines] == [2, 3, 5, 6, 8, 9]
    rounds = [json.loads(x) for x in (out / "rounds.jsonl").read_text().splitlines()]
    assert len(rounds) == 3 and rounds[0]["pairs"] == [1, 3, 5]
    for r in rounds:
        assert r["round_mean_delta"] == pytest.approx(np.mean([DELTAS[i] for i in r["pairs"]]), rel=1e-6)
    assert (out / "final").is_dir()


# ---- the report ----------------------------------------------------------------------------------------------
def _budget_study() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Runs of three static strategies and a dynamic one at two budgets, two seeds, with
    known per-problem correctness: the student 50%, dynamic 100% at 180, all 75%."""
    n = 100
    hyper = {
        "dpo": json.dumps({"dynamic": None}),
        "dyn": json.dumps({"dynamic": {"fraction": 0.3, "key": "aggregate"}}),
    }
    strategies = {
        "top": "grid:g:top:aggregate:0.3",
        "random": "grid:g:random:aggregate:0.3",
        "all": "grid:g:all",
    }
    acc = {("dpo", "top"): 0.6, ("dpo", "random"): 0.5, ("dpo", "all"): 0.75, ("dyn", "all"): 1.0}
    runs, samples = [], []
    for budget in (180, 360):
        for (variant, kind), p in acc.items():
            for seed in (0, 1):
                run_id = f"{variant}{budget}-{kind}-s{seed}"
                runs.append({"run_id": run_id, "variant": f"{variant}{budget}", "algorithm": "dpo",
                             "strategy": strategies[kind], "n_pairs": 90 if kind != "all" else 300,
                             "seed": seed, "hyper": hyper[variant], "pair_updates": budget})  # fmt: skip
                for suite in ("word", "distractor"):
                    samples += [{"model_id": run_id, "suite": suite, "problem_id": f"p{i}",
                                 "correct": i < p * n} for i in range(n)]  # fmt: skip
    for suite in ("word", "distractor"):
        samples += [
            {"model_id": "student", "suite": suite, "problem_id": f"p{i}", "correct": i % 2 == 0}
            for i in range(n)
        ]
    selections = pd.DataFrame({"strategy": list(strategies.values()), "pair_id": ["a", "b", "c"]})
    pairs = pd.DataFrame({"pair_id": ["a", "b", "c"], "generator_gap": 0.5})
    return pd.DataFrame(runs), pd.DataFrame(samples), selections, pairs


def test_the_report_has_a_curve_row_per_strategy_and_budget():
    from prefdelta.report import analysis
    from prefdelta.report.markdown import budget_markdown

    runs, samples, selections, pairs = _budget_study()
    domains = {"word": "in", "distractor": "out"}
    gains = analysis.compute_gains(runs, samples, "student", domains, n_boot=300)
    cells = analysis.cell_table(gains, runs, selections, pairs, list(domains))
    budget = analysis.budget_table(cells, runs)
    assert len(budget) == 8
    assert set(budget["curve"]) == {"top 0.3 aggregate", "random 0.3", "all", "dynamic 0.3 aggregate"}
    assert sorted(set(budget["pair_updates"])) == [180, 360] and set(budget["seeds"]) == {2}
    dyn = budget[budget["curve"] == "dynamic 0.3 aggregate"].iloc[0]
    assert dyn["gain_in"] == pytest.approx(0.5) and dyn["gain_in_lo"] <= 0.5 <= dyn["gain_in_hi"]
    contrasts = analysis.budget_contrasts(gains, budget)
    assert len(contrasts) == 2 * 3  # dynamic against each static strategy, at each budget
    vs_all = contrasts[
        (contrasts["contrast"] == "dynamic 0.3 aggregate − all") & (contrasts["pair_updates"] == 180)
    ]
    row = vs_all.iloc[0]
    assert row["in"] == pytest.approx(0.25) and 0 < row["in_lo"] <= 0.25 <= row["in_hi"]
    text = budget_markdown(budget, contrasts)
    assert "## Dynamic selection: accuracy vs pair-updates" in text
    assert "| dpo | dynamic 0.3 aggregate − all | 180 | +25.0 [" in text
    # a study without dynamic runs has no such table
    static = runs[~runs["variant"].str.startswith("dyn")]
    assert analysis.budget_table(cells, static).empty


def test_the_budget_plot_draws_the_curves(tmp_path):
    from prefdelta.report import analysis, plots

    runs, samples, selections, pairs = _budget_study()
    domains = {"word": "in", "distractor": "out"}
    gains = analysis.compute_gains(runs, samples, "student", domains, n_boot=100)
    budget = analysis.budget_table(analysis.cell_table(gains, runs, selections, pairs, list(domains)), runs)
    path = plots.plot_budget(budget, tmp_path / "budget.png")
    assert path is not None and path.stat().st_size > 1000
    assert plots.plot_budget(pd.DataFrame(), tmp_path / "none.png") is None


# ---- the study --------------------------------------------------------------------------------------------------
@pytest.mark.integration
def test_a_tiny_study_with_a_dynamic_variant_trains_and_reports_it(tmp_path):
    import yaml

    from conftest import spec_from
    from prefdelta.study.runner import run_study
    from prefdelta.workspace import Workspace

    data = yaml.safe_load((ROOT / "tests" / "data" / "tiny_study.yaml").read_text())
    data["select"]["by_generator_pair"] = False
    data["train"].update(
        selections=["top", "random", "all"],
        seeds=[0],
        epochs=2,
        variants={"dyn": {"dynamic": {"fraction": 0.5, "key": "aggregate"}}},
    )
    ws = Workspace(tmp_path / "ws")
    run_study(ws, spec_from(data))
    runs = ws.read_table("runs")
    n_all = int(runs.loc[runs["strategy"] == "all", "n_pairs"].iloc[0])
    dyn = runs[runs["variant"] == "dyn"]
    assert list(dyn["strategy"]) == ["all"]  # the dynamic variant trains on its pool only
    k = math.ceil(0.5 * n_all)
    assert int(dyn["pair_updates"].iloc[0]) == 2 * k
    static = runs[runs["variant"] == "dpo"].set_index("strategy")
    assert int(static.at["all", "pair_updates"]) == 2 * n_all
    lines = [json.loads(x) for x in ws.resolve(dyn["metrics"].iloc[0]).read_text().splitlines()]
    assert sorted({x["round"] for x in lines}) == [0, 1] and {x["round_pairs"] for x in lines} == {k}
    budget = pd.read_csv(ws.reports_dir / "tables" / "budget.csv")
    assert "dynamic 0.5 aggregate" in set(budget["curve"]) and {"top", "random", "all"} <= set(
        budget["curve"]
    )
    summary = (ws.reports_dir / "summary.md").read_text()
    assert "## Dynamic selection: accuracy vs pair-updates" in summary
    assert "Dynamic selection: accuracy vs pair-updates" in (ws.reports_dir / "report.html").read_text()


def test_the_pairs_file_entry_point_refuses_a_dynamic_run(tmp_path):
    from prefdelta.train.launch import parse_hyper, run

    hyper = parse_hyper('{"dynamic": {"fraction": 0.3}}')
    with pytest.raises(UserError, match="--hyper: dynamic selection needs each pair's delta"):
        run(tmp_path / "model", tmp_path / "pairs.jsonl", tmp_path / "out", hyper, None)
    assert not (tmp_path / "out").exists()


def _planned_workspace(tmp_path, aggregate: list[float]):
    """A workspace holding just what the train stage plans from: selections, pairs,
    traces and problems of three pairs (plain and ``top``)."""
    from prefdelta.workspace import Workspace

    ws = Workspace(tmp_path / "ws")
    ids = ["pa", "pb", "pc"]
    pairs = pd.DataFrame({"pair_id": ids, "problem_id": ["q0", "q1", "q2"], "chosen_trace_id": ["c0", "c1", "c2"],
                          "rejected_trace_id": ["r0", "r1", "r2"], "delta_aggregate": aggregate})  # fmt: skip
    sel = pd.DataFrame({"selection_id": ["s-all"] * 3 + ["s-top"], "strategy": ["all"] * 3 + ["top"],
                        "pair_id": [*ids, "pa"]})  # fmt: skip
    ws.write_table("pairs", pairs)
    ws.write_table("selections", sel)
    ws.write_table("traces", pd.DataFrame({"trace_id": ["c0", "c1", "c2", "r0", "r1", "r2"], "text": "x"}))
    ws.write_table(
        "problems", pd.DataFrame({"problem_id": ["q0", "q1", "q2"], "prompt": "p", "source": "arith"})
    )
    return ws


@pytest.mark.parametrize(
    ("train", "aggregate", "message"),
    [
        ({"variants": {"dyn": {"dynamic": {"pool": "bottom"}}}}, [1.0, 2.0, 3.0],
         r"train\.variants\.dyn\.dynamic\.pool: 'bottom' names none of the selections"),
        ({"dynamic": {"key": "aggregate"}, "selections": ["all"]}, [1.0, None, 3.0],
         r"train\.dynamic\.key: 1 of the 3 pairs of selection s-all have no delta_aggregate \(e\.g\. pb\)"),
    ],
)  # fmt: skip
def test_a_pool_that_cannot_be_ranked_is_a_user_error(tmp_path, train, aggregate, message):
    from conftest import spec_from, template_data
    from prefdelta.train.stage import plan_jobs

    data = template_data("demo")
    data["train"] = {**data["train"], "selections": ["top", "all"], "variants": {}, **train}
    ws = _planned_workspace(tmp_path, aggregate)
    with pytest.raises(UserError, match=message):
        plan_jobs(ws, spec_from(data), ("student", str(tmp_path / "no-model"), "key"), "code")
