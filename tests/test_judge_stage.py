"""The judge stage: oracle (arith), calc (GSM8K) and llm kinds write the same judgments table."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from conftest import run_stage, spec_from
from prefdelta.errors import UserError
from prefdelta.judge.config import JudgeSpec, LLMJudgeSettings
from prefdelta.judge.dimensions import DIMENSIONS
from prefdelta.judge.stage import JudgeContext, judge_llm, run_judge
from prefdelta.workspace import Workspace
from prefdelta.worlds import arith


def gsm8k_workspace(root: Path, data_dir: Path, n_problems: int = 5) -> Workspace:
    from prefdelta.sources.gsm8k import load_model_solutions

    problems, traces = load_model_solutions(data_dir)
    problems = problems.head(n_problems)
    traces = traces[traces["problem_id"].isin(problems["problem_id"])]
    ws = Workspace(root)
    ws.write_table("problems", problems)
    ws.write_table("traces", traces.reset_index(drop=True))
    return ws


def arith_workspace(root: Path, n_problems: int = 5) -> Workspace:
    """A workspace holding ``n_problems`` arith problems and one reference trace ``t<i>`` each."""
    ws = Workspace(root)
    problems = arith.make_problems(arith.ArithSpec(), n_problems, seed=0, prefix="pairs")
    ws.write_table(
        "problems",
        pd.DataFrame(
            [
                {
                    "problem_id": p.problem_id,
                    "source": "arith",
                    "split": "pairs",
                    "prompt": arith.prompt_text(p.text),
                    "reference_answer": str(p.answer),
                    "reference_solution": arith.reference_trace(p),
                    "meta": json.dumps(p.to_meta()),
                }
                for p in problems
            ]
        ),
    )
    ws.write_table(
        "traces",
        pd.DataFrame({"trace_id": [f"t{i}" for i in range(n_problems)], "problem_id": [p.problem_id for p in problems],
                      "text": [arith.reference_trace(p) for p in problems]}),
    )  # fmt: skip
    return ws


def test_oracle_path_unchanged(tmp_path: Path) -> None:
    cfg = spec_from({"judge": {"kind": "oracle"}})
    ws = arith_workspace(tmp_path)
    run_stage(ws, cfg, "judge")
    df = ws.read_table("judgments")
    assert set(df["judge_id"]) == {"arith-oracle"}
    assert (df[list(DIMENSIONS)] == 5.0).all().all() and df["outcome"].all()


def test_calc_kind_on_gsm8k(tmp_path: Path, shared_datasets: Path) -> None:
    from prefdelta.pairs.build import trace_scores

    ws = gsm8k_workspace(tmp_path, shared_datasets)
    cfg = spec_from({"judge": {"kind": "calc"}})
    run_stage(ws, cfg, "judge")
    df = ws.read_table("judgments")
    assert len(df) == 20 and set(df["judge_id"]) == {"calc-checker"}
    assert df[list(DIMENSIONS)].stack().between(1, 5).all()
    traces = ws.read_table("traces").set_index("trace_id")
    assert (df.set_index("trace_id")["outcome"] == traces.loc[df["trace_id"], "is_correct"]).all()
    scores = trace_scores(df)
    assert len(scores) == 20
    assert run_stage(ws, cfg, "judge").skipped


def test_llm_kind_needs_settings() -> None:
    with pytest.raises(UserError, match=r"field 'judge\.judges\.0'.*needs an llm section"):
        spec_from({"judge": {"kind": "llm"}})
    with pytest.raises(UserError, match=r"judge\.judges\.0\.llm\.base_url.*required"):
        spec_from({"judge": {"kind": "llm", "llm": {"model": "m"}}})


def test_several_judges_and_the_one_for_deltas() -> None:
    cfg = spec_from({"judge": {"judges": [{"kind": "calc"}, {"kind": "llm", "llm": {"model": "m", "base_url": "http://x/v1"}}],
                               "deltas_from": "llm:m"}})  # fmt: skip
    assert [j.judge_id for j in cfg.judge.judges] == ["calc-checker", "llm:m"]
    assert cfg.judge.delta_judge == "llm:m"
    with pytest.raises(UserError, match=r"judge\.deltas_from.*'nope' is not a judge id"):
        spec_from({"judge": {"judges": [{"kind": "calc"}], "deltas_from": "nope"}})
    with pytest.raises(UserError, match=r"judge\.judges.*'calc-checker' appears twice"):
        spec_from({"judge": {"judges": [{"kind": "calc"}, {"kind": "calc"}]}})


def test_judge_llm_with_in_process_backend(tmp_path: Path, shared_datasets: Path) -> None:
    from test_judge_llm import ScriptedBackend

    ws = gsm8k_workspace(tmp_path, shared_datasets, n_problems=2)
    reply = json.dumps(dict.fromkeys(DIMENSIONS, 4) | {"rationale": "fine"})
    backend = ScriptedBackend(lambda req: reply)
    spec = JudgeSpec(kind="llm", llm=LLMJudgeSettings(model="fake", base_url="http://unused/v1", repeats=2))
    ctx = JudgeContext(tmp_path / "c.sqlite", None, "judge.judges.0.llm", backend=backend)
    df = run_judge(ws.read_table("problems"), ws.read_table("traces"), spec, ctx)
    assert "outcome" not in judge_llm(ws.read_table("problems"), ws.read_table("traces"), spec, ctx)
    assert len(df) == 16 and (df[list(DIMENSIONS)] == 4.0).all().all()
    traces = ws.read_table("traces").set_index("trace_id")
    assert (df.set_index("trace_id")["outcome"] == traces.loc[df["trace_id"], "is_correct"]).all()
    assert "Reference answer" in backend.requests[0].messages[-1]["content"]
