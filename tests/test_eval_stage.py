"""The eval stage: arith suites as before, plus real-benchmark suites on the same models."""

from __future__ import annotations

import pandas as pd
import pytest

from prefdelta.study.spec import load_config
from prefdelta.study.stages import STAGES
from prefdelta.workspace import Workspace

pytestmark = pytest.mark.integration

SUITE = """
name: real_smoke
domain: in
defaults: {sampling: {max_tokens: 8}}
benchmarks:
  - {name: gsm8k, source: gsm8k, grader: gsm8k}
  - {name: math500, source: math500, grader: boxed}
"""


def test_stage_runs_arith_and_benchmark_suites_and_keeps_cli_shards(
    tmp_path, tiny_model_dir, shared_datasets
):
    suite = tmp_path / "real_smoke.yaml"
    suite.write_text(SUITE)
    cfg = load_config(None)
    cfg.world.train.n, cfg.world.pairs.n = 5, 5
    for s in cfg.eval.suites:
        s.problems.n = 4
    cfg.eval.benchmark_suites = [str(suite)]
    cfg.eval.data_dir = str(shared_datasets)
    cfg.eval.limit = 2
    cfg.eval.max_new_tokens = 8
    ws = Workspace(tmp_path / "ws")
    STAGES["problems"](ws, cfg)
    ws.write_table("zoo", pd.DataFrame([{"generator_id": "tiny", "path": str(tiny_model_dir), "key": "k0"}]))
    # A row written by `prefdelta eval run` / `eval lm-eval` earlier must survive the stage.
    foreign = pd.DataFrame([{"model_id": "other", "suite": "lm-eval", "value": 0.5}])
    ws.write_shard("evals", "lmeval-other-abc", foreign)

    STAGES["eval"](ws, cfg)
    evals = ws.read_table("evals")
    tiny = evals[evals["model_id"] == "tiny"]
    assert set(tiny["suite"]) == {"arith_in_domain", "arith_distractor", "real_smoke"}
    arith = tiny[tiny["suite"] == "arith_in_domain"].iloc[0]
    assert arith["n"] == 4 and arith["benchmark"] == "arith_in_domain"
    real = tiny[(tiny["suite"] == "real_smoke") & (tiny["level"] == "benchmark")]
    assert sorted(real["benchmark"]) == ["gsm8k", "math500"] and (real["n"] == 2).all()
    assert (real["checkpoint_hash"] == "k0").all()
    assert "lmeval-other-abc" in ws.shards("evals")
    assert STAGES["eval"](ws, cfg).skipped
