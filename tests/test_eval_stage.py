"""The eval stage: arith suites and real-benchmark suites through the same runner, on the same models."""

from __future__ import annotations

import pandas as pd
import pytest

from conftest import run_stage, spec_from, template_data
from prefdelta.workspace import Workspace

pytestmark = pytest.mark.integration

SUITE = """
name: real_smoke
domain: in
defaults: {sampling: {max_tokens: 8}}
benchmarks:
  - {name: gsm8k, source: gsm8k}
  - {name: math500, source: math500, grader: boxed}
"""


def test_stage_runs_arith_and_benchmark_suites_and_keeps_other_shards(
    tmp_path, tiny_model_dir, shared_datasets
):
    suite = tmp_path / "real_smoke.yaml"
    suite.write_text(SUITE)
    data = template_data("demo")
    data["problems"][0]["n"] = 5
    for s in data["eval"]["suites"]:
        s["n"] = 4
        s["sampling"] = {"max_tokens": 8}
    data["eval"]["suites"].append(str(suite))
    data["eval"].update(limit=2, include=["generators"])
    data["data_dir"] = str(shared_datasets)
    data["generators"] = ["tiny"]
    data["zoo"]["models"][0]["snapshots"] = {"tiny": 10}
    data["select"] = {}
    data["pairs"]["within"] = []
    data["student"] = {"model": None}
    data["pairs"]["chosen"] = []
    cfg = spec_from(data)
    ws = Workspace(tmp_path / "ws")
    ws.write_table(
        "zoo",
        pd.DataFrame(
            [
                {
                    "generator_id": "tiny",
                    "family": "llama",
                    "params": 1,
                    "path": str(tiny_model_dir),
                    "key": "k0",
                }
            ]
        ),
    )
    # Rows of another model (evaluated by hand earlier) survive the stage.
    foreign = pd.DataFrame([{"model_id": "other", "suite": "lm-eval", "value": 0.5}])
    ws.write_shard("evals", "lmeval-other-abc", foreign)

    assert not run_stage(ws, cfg, "eval").skipped
    evals = ws.read_table("evals")
    tiny = evals[evals["model_id"] == "tiny"]
    assert set(tiny["suite"]) == {"word", "code", "stem", "distractor", "real_smoke"}
    arith = tiny[(tiny["suite"] == "code") & (tiny["level"] == "benchmark")].iloc[0]
    assert arith["n"] == 2 and arith["benchmark"] == "code"  # eval.limit caps every benchmark
    real = tiny[(tiny["suite"] == "real_smoke") & (tiny["level"] == "benchmark")]
    assert sorted(real["benchmark"]) == ["gsm8k", "math500"] and (real["n"] == 2).all()
    assert tiny["checkpoint_hash"].nunique() == 1
    assert "lmeval-other-abc" in ws.shards("evals")
    assert run_stage(ws, cfg, "eval").skipped
