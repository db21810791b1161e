"""``accelerate launch --num_processes 2`` on CPU (gloo) trains to the same loss curve and
weights as one process with the same global batch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from prefdelta.worlds.arith import ArithSpec, make_problems, prompt_text, reference_trace

ROOT = Path(__file__).resolve().parents[1]
ACCELERATE = Path(sys.executable).with_name("accelerate")


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1"}


def _curve(run: Path) -> list[dict[str, float]]:
    return [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.integration
@pytest.mark.timeout(600)
@pytest.mark.parametrize(
    "hyper",
    [
        # odd global batch (5 pairs: 3 + 2 per process), RPO term, accumulation, micro-batches
        {
            "algorithm": "dpo",
            "batch_size": 5,
            "grad_accum": 2,
            "nll_weight": 0.5,
            "max_tokens_per_forward": 400,
        },
        # KTO: the KL reference point is all-reduced over the global batch
        {"algorithm": "kto", "batch_size": 4, "beta": 0.5},
        # ORPO: reference-free (no cache to share), its SFT term and log-odds metric
        {"algorithm": "orpo", "batch_size": 5, "beta": 0.5, "max_tokens_per_forward": 400},
    ],
    ids=["dpo", "kto", "orpo"],
)
def test_two_processes_match_one(tmp_path, trained_model_dir, hyper):
    from safetensors.torch import load_file

    problems = make_problems(ArithSpec(max_steps=3), 12, seed=31)
    lines = [
        json.dumps(
            {
                "prompt": prompt_text(p.text),
                "chosen": reference_trace(p),
                "rejected": reference_trace(problems[(i + 5) % 12]),
            }
        )
        for i, p in enumerate(problems)
    ]
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("\n".join(lines) + "\n")
    hp = json.dumps({"epochs": 1, "lr": 2e-3, **hyper})
    args = [
        "-m",
        "prefdelta.train.launch",
        "--model",
        str(trained_model_dir),
        "--pairs",
        str(pairs),
        "--hyper",
        hp,
    ]
    one, two = tmp_path / "one", tmp_path / "two"
    subprocess.run(
        [sys.executable, *args, "--out", str(one)], check=True, env=_env(), cwd=ROOT, capture_output=True
    )
    launch = [
        str(ACCELERATE),
        "launch",
        "--config_file",
        str(ROOT / "src/prefdelta/data/accelerate/cpu_ddp_2.yaml"),
    ]
    proc = subprocess.run(
        [*launch, *args, "--out", str(two)], env=_env(), cwd=ROOT, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    c1, c2 = _curve(one), _curve(two)
    extra_keys = ("log_odds",) if hyper["algorithm"] == "orpo" else ()
    if hyper["algorithm"] == "orpo":  # launch's default cache folder is never made
        assert not (one / "refcache").exists() and not (two / "refcache").exists()
    assert len(c1) == len(c2) >= 2
    for key in ("loss", "margin", "preference_accuracy", "logp_chosen", "grad_norm", *extra_keys):
        assert [m[key] for m in c2] == pytest.approx([m[key] for m in c1], rel=1e-4, abs=1e-6), key
    assert c1[-1]["loss"] != pytest.approx(c1[0]["loss"], rel=1e-3)  # the curve moves
    w1, w2 = load_file(str(one / "final/model.safetensors")), load_file(str(two / "final/model.safetensors"))
    for k in w1:
        torch.testing.assert_close(w2[k], w1[k], rtol=1e-4, atol=2e-5)
