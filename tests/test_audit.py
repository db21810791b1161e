"""Judge audit on the arith world: the oracle against itself, and a deliberately biased judge."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from prefdelta.judge.audit import (
    audit,
    noisy_judge,
    position_bias,
    quadratic_weighted_kappa,
    repeat_agreement,
)
from prefdelta.judge.dimensions import DIMENSIONS
from prefdelta.judge.oracle import oracle_judge
from prefdelta.worlds.arith import ArithSpec, make_problems, reference_trace, step_line

FILLER = "Let me re-read the problem to be sure."


def flawed_trace(problem, rng: random.Random) -> str:
    """A reference trace with random slips, skipped steps and filler lines (varied quality and length)."""
    lines = []
    value = problem.start
    for op in problem.ops:
        roll = rng.random()
        if roll < 0.15:
            lines.append(step_line(op.kind, value, op.operand, op.result + rng.choice([-2, -1, 1, 2])))
        elif roll > 0.9:
            pass  # skipped step
        else:
            lines.append(step_line(op.kind, value, op.operand))
        value = op.result
        lines.extend([FILLER] * rng.choice([0, 0, 1, 2, 4]))
    lines.append(f"#### {value if rng.random() < 0.8 else value + 1}")
    return "\n".join(lines)


@pytest.fixture(scope="module")
def arith_judged() -> tuple[pd.DataFrame, pd.Series]:
    rng = random.Random(0)
    problems = make_problems(ArithSpec(), 300, seed=11)
    rows, lengths = [], {}
    for i, p in enumerate(problems):
        text = flawed_trace(p, rng) if i % 5 else reference_trace(p)
        tid = f"t{i}"
        rows.append({"trace_id": tid, "repeat": 0, **oracle_judge(p, text), "error": None})
        lengths[tid] = float(len(text))
    df = pd.DataFrame(rows)
    df["error"] = df["error"].astype("string")
    return df, pd.Series(lengths)


def test_oracle_against_itself_is_perfect(arith_judged) -> None:
    oracle, lengths = arith_judged
    table = audit(oracle, oracle, DIMENSIONS, lengths).set_index("dimension")
    assert (table["n"] == 300).all()
    assert np.allclose(table["spearman"], 1.0)
    assert np.allclose(table["qw_kappa"], 1.0)
    assert np.allclose(table["mean_abs_error"], 0.0)
    assert np.allclose(table["length_slope_per_100"], 0.0, atol=1e-9)


@pytest.mark.parametrize("bias", [0.0, 0.3, -0.5])
def test_noisy_judge_reports_the_length_bias_it_was_given(arith_judged, bias: float) -> None:
    oracle, lengths = arith_judged
    noisy = noisy_judge(
        oracle, DIMENSIONS, lengths, noise_sd=0.4, length_bias_per_100=bias, repeats=3, seed=1
    )
    table = audit(noisy, oracle, DIMENSIONS, lengths).set_index("dimension")
    assert np.allclose(table["length_slope_per_100"], bias, atol=0.08), table["length_slope_per_100"]
    if bias == 0.0:
        assert (table["length_partial_rho"].abs() < 0.15).all()
    else:
        assert (np.sign(table["length_partial_rho"]) == np.sign(bias)).all()
    assert (table["spearman"] < 1.0).all() and (table["qw_kappa"] < 1.0).all()
    assert (table["repeat_exact_agreement"] == 0.0).all() and (table["repeat_std"] > 0.2).all()


def test_correctness_reference(arith_judged) -> None:
    oracle, lengths = arith_judged
    ref = oracle[["trace_id", "outcome"]].assign(outcome=lambda d: d["outcome"].astype(float))
    table = audit(oracle, ref, DIMENSIONS, lengths, reference_kind="correctness").set_index("dimension")
    assert table["qw_kappa"].isna().all()
    assert table.loc["signal_to_noise", "spearman"] > 0  # a wrong #### breaks the dependency chain


def test_qwk_matches_sklearn() -> None:
    sklearn = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    a = rng.integers(1, 6, 200)
    b = np.clip(a + rng.integers(-1, 2, 200), 1, 5)
    want = sklearn.cohen_kappa_score(a, b, weights="quadratic", labels=[1, 2, 3, 4, 5])
    assert quadratic_weighted_kappa(a, b) == pytest.approx(want)
    assert quadratic_weighted_kappa([3, 3], [3, 3]) == 1.0


def test_repeat_agreement() -> None:
    df = pd.DataFrame({"trace_id": ["a", "a", "a", "b", "b"], "x": [3, 3, 4, 5, 5]})
    same, spread = repeat_agreement(df, "x")
    assert same == pytest.approx(2 / 4)  # a: 1 of 3 pairs equal; b: 1 of 1
    assert spread == pytest.approx((np.std([3, 3, 4]) + 0) / 2)


def test_position_bias_of_a_first_position_judge() -> None:
    rows = []
    for i in range(10):
        rows.append({"pair_id": f"p{i}", "order": "ab", "repeat": 0, "prefers_a_x": 1.0})
        rows.append({"pair_id": f"p{i}", "order": "ba", "repeat": 0, "prefers_a_x": 0.0})  # first shown = b
    table = position_bias(pd.DataFrame(rows), ["x"]).iloc[0]
    assert table["order_swap_agreement"] == 0.0 and table["first_position_rate"] == 1.0

    fair = pd.DataFrame(rows).assign(prefers_a_x=1.0)
    fair_row = position_bias(fair, ["x"]).iloc[0]
    assert fair_row["order_swap_agreement"] == 1.0 and fair_row["first_position_rate"] == 0.5


def test_cli_audit_writes_table_and_plots(arith_judged, tmp_path: Path, capsys) -> None:
    from prefdelta.cli import main
    from prefdelta.workspace import Workspace

    oracle, lengths = arith_judged
    ws = Workspace(tmp_path / "ws")
    ws.write_table("judgments", oracle.assign(judge_id="arith-oracle"))
    ws.write_table("traces", pd.DataFrame({"trace_id": lengths.index, "n_tokens": lengths.to_numpy()}))
    out = tmp_path / "audit"
    main(
        [
            "judge", "audit", "-w", str(ws.root), "--reference-judge-id", "arith-oracle",
            "--simulate-noise", "0.4", "--simulate-length-bias", "0.3", "--out", str(out),
        ]
    )  # fmt: skip
    table = pd.read_csv(out / "audit.csv")
    assert np.allclose(table["length_slope_per_100"], 0.3, atol=0.08)
    assert {"judge_vs_reference.png", "length_bias.png", "audit_summary.png"} <= {
        p.name for p in out.iterdir()
    }
    assert "judge audit" in capsys.readouterr().out


def test_cli_audit_needs_a_reference(tmp_path: Path) -> None:
    from prefdelta.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["judge", "audit", "-w", str(tmp_path), "--judgments", str(tmp_path / "missing.parquet")])
    assert exc.value.code == 2
