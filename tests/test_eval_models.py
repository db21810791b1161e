"""`prefdelta eval run` / `compare` end to end on real local models: a checkpoint folder
and a LoRA adapter applied with peft, generation through transformers, HumanEval
completions run in the sandbox."""

from __future__ import annotations

import pytest
import torch

from prefdelta.cli import main
from prefdelta.evaluate.models import ModelSpec, checkpoint_hash
from prefdelta.workspace import Workspace

pytestmark = pytest.mark.integration

SUITE = """
name: smoke
domain: out
defaults: {sampling: {max_tokens: 8}}
benchmarks:
  - {name: gsm8k, source: gsm8k, grader: gsm8k, limit: 3}
  - name: humaneval
    source: humaneval
    grader: humaneval
    metric: pass@k
    samples: 2
    k: [1, 2]
    limit: 2
    sampling: {temperature: 0.8, max_tokens: 8}
"""


@pytest.fixture(scope="module")
def adapter_dir(tmp_path_factory, tiny_model_dir):
    """A LoRA adapter on the tiny model, non-zero so it changes what the model says."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(1)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    cfg = LoraConfig(r=4, lora_alpha=64, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    model = get_peft_model(base, cfg)
    out = tmp_path_factory.mktemp("adapters") / "lora"
    model.save_pretrained(out)
    return out


def test_run_folder_and_adapter_then_compare(tmp_path, tiny_model_dir, adapter_dir, shared_datasets, capsys):
    suite = tmp_path / "smoke.yaml"
    suite.write_text(SUITE)
    ws = tmp_path / "ws"
    common = ["--suite", str(suite), "-d", str(shared_datasets), "-w", str(ws), "--set", "threads=1"]
    main(["eval", "-m", str(tiny_model_dir), "--model-id", "base", *common])
    main(["eval", "-m", str(adapter_dir), "--model-id", "lora", *common])
    evals = Workspace(ws).read_table("evals")
    assert set(evals["model_id"]) == {"base", "lora"}
    assert set(evals["metric"]) == {"accuracy", "pass@1", "pass@2", "macro_mean"}
    hashes = dict(zip(evals["model_id"], evals["checkpoint_hash"], strict=False))
    assert hashes["base"] == checkpoint_hash(ModelSpec(str(tiny_model_dir)))
    assert hashes["lora"] != hashes["base"]
    assert ((evals["ci_low"] <= evals["value"]) & (evals["value"] <= evals["ci_high"])).all()

    samples = Workspace(ws).read_table("eval_samples")
    assert len(samples) == 2 * (3 + 2 * 2)
    code = samples[samples["benchmark"] == "humaneval"]
    assert set(code["predicted"]) <= {"passed", "failed", "timeout"}
    base_texts = samples[samples["model_id"] == "base"].sort_values(["benchmark", "problem_id", "sample"])[
        "text"
    ]
    lora_texts = samples[samples["model_id"] == "lora"].sort_values(["benchmark", "problem_id", "sample"])[
        "text"
    ]
    assert base_texts.tolist() != lora_texts.tolist()  # the adapter was applied

    capsys.readouterr()
    main(["eval", "compare", "base", "lora", "-w", str(ws)])
    out = capsys.readouterr().out
    assert "gsm8k" in out and "humaneval" in out and "ci_low" in out


def test_bad_model_folder_is_a_user_error(tmp_path, shared_datasets):
    suite = tmp_path / "smoke.yaml"
    suite.write_text(SUITE)
    with pytest.raises(SystemExit) as err:
        main(
            [
                "eval",
                "-m",
                str(tmp_path / "nope"),
                "--suite",
                str(suite),
                "-d",
                str(shared_datasets),
                "-w",
                str(tmp_path),
            ]
        )
    assert err.value.code == 2


def test_served_endpoint_through_the_openai_backend(tmp_path, shared_datasets):
    """A served model (an OpenAI-compatible HTTP server) evaluated like a local one."""
    from prefdelta.generate.scripted_server import ScriptedServer

    suite = tmp_path / "smoke.yaml"
    suite.write_text(SUITE)
    ws = tmp_path / "ws"
    with ScriptedServer(honour_n=False) as server:  # one choice per call, like `transformers serve`
        main(
            ["eval", "--backend", "openai", "--url", server.url, "-m", "served", "--suite", str(suite),
             "-d", str(shared_datasets), "-w", str(ws)]
        )  # fmt: skip
        calls = sum(server.seen.values())
    evals = Workspace(ws).read_table("evals")
    assert set(evals["model_id"]) == {"served"}
    assert (evals["checkpoint_hash"] == checkpoint_hash(ModelSpec("served", "openai", url=server.url))).all()
    samples = Workspace(ws).read_table("eval_samples")
    assert len(samples) == 3 + 2 * 2 and samples["text"].str.startswith("echo").all()
    assert calls == 3 + 2 * 2  # the two HumanEval samples of each problem were asked one by one
