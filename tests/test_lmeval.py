"""lm-evaluation-harness runs offline on a tiny local model with the shipped local-file tasks."""

from __future__ import annotations

import json

import pytest

from prefdelta.cli import main
from prefdelta.evaluate import lmeval
from prefdelta.judge.outcome import grade_boxed, grade_choice, grade_gsm8k
from prefdelta.workspace import Workspace

LIMIT = 2


def test_task_yamls_render_with_the_data_dir(tmp_path, shared_datasets):
    out = lmeval.render_tasks(shared_datasets, tmp_path / "tasks")
    names = sorted(p.name for p in out.iterdir())
    assert names == ["gsm8k.yaml", "humaneval.yaml", "math500.yaml", "mmlu_stem.yaml", "utils.py"]
    text = (out / "gsm8k.yaml").read_text()
    assert "@DATA_DIR@" not in text and f"{shared_datasets.resolve()}/gsm8k/test.jsonl" in text


def test_process_results_hooks_use_prefdelta_graders(tmp_path, shared_datasets):
    import importlib.util

    out = lmeval.render_tasks(shared_datasets, tmp_path / "tasks")
    spec = importlib.util.spec_from_file_location("lmeval_task_utils", out / "utils.py")
    utils = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(utils)
    doc = {"answer": "Janet sells 9 eggs.\n#### 18"}
    assert utils.process_gsm8k(doc, ["so 9 * 2 = 18\n#### 18"]) == {"acc": 1.0}
    assert utils.process_boxed({"answer": "\\frac{1}{2}"}, ["thus \\boxed{0.5}"]) == {"acc": 1.0}
    assert utils.process_choice({"answer": 2}, ["Answer: C"]) == {"acc": 1.0}
    he = {
        "task_id": "t",
        "prompt": "def f(x):\n",
        "entry_point": "f",
        "canonical_solution": "    return x\n",
        "test": "def check(c):\n    assert c(3) == 3\n",
    }
    assert utils.process_humaneval(he, ["    return x\n"]) == {"pass@1": 1.0}
    assert utils.process_humaneval(he, ["    return -x\n", "    return x\n"]) == {"pass@1": 0.5}


@pytest.mark.integration
def test_lm_eval_offline_on_tiny_model(tmp_path, tiny_model_dir, shared_datasets, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf-datasets"))
    ws = tmp_path / "ws"
    main(
        [
            "eval", "-m", str(tiny_model_dir), "--model-id", "tiny",
            "--tasks", "gsm8k,math500,mmlu_stem,humaneval", "-d", str(shared_datasets), "--limit", str(LIMIT),
            "--max-tokens", "8", "--set", "eval.lm_eval_batch_size=4", "--set", "threads=1", "-w", str(ws),
        ]
    )  # fmt: skip
    evals = Workspace(ws).read_table("evals")
    evals = evals[evals["level"] == "benchmark"]
    assert sorted(evals["benchmark"]) == ["gsm8k", "humaneval", "math500", "mmlu_stem"]
    assert (evals["suite"] == "lm-eval:" + evals["benchmark"]).all() and (evals["model_id"] == "tiny").all()
    assert (evals["n"] == LIMIT).all() and evals["value"].between(0, 1).all()
    assert set(evals["metric"]) == {"acc", "pass@1"}

    samples = Workspace(ws).read_table("eval_samples")
    assert len(samples) == 4 * LIMIT and samples["text"].map(len).gt(0).all()
    # Every lm-eval grade equals prefdelta's own grade of the same text.
    by_task = {t: g for t, g in samples.groupby("benchmark")}
    test = (shared_datasets / "gsm8k/test.jsonl").read_text().splitlines()
    for i, row in enumerate(by_task["gsm8k"].sort_values("problem_id").itertuples()):
        assert row.correct == grade_gsm8k(row.text, json.loads(test[i])["answer"]).correct
    math = (shared_datasets / "math500/test.jsonl").read_text().splitlines()
    for i, row in enumerate(by_task["math500"].sort_values("problem_id").itertuples()):
        assert row.correct == grade_boxed(row.text, json.loads(math[i])["answer"]).correct
    mmlu = (shared_datasets / "mmlu_stem/test.jsonl").read_text().splitlines()
    for i, row in enumerate(by_task["mmlu_stem"].sort_values("problem_id").itertuples()):
        assert row.correct == grade_choice(row.text, json.loads(mmlu[i])["answer"]).correct


def test_unknown_task_is_a_user_error(tmp_path, tiny_model_dir, shared_datasets):
    from prefdelta.errors import UserError
    from prefdelta.evaluate.models import ModelSpec

    with pytest.raises(UserError, match="unknown lm-eval task"):
        lmeval.run(ModelSpec(str(tiny_model_dir)), ["gsm8k", "no_such_task"], shared_datasets, limit=1)


def test_model_args_for_folders_and_adapters(tmp_path):
    from prefdelta.errors import UserError
    from prefdelta.evaluate.models import ModelSpec

    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "/models/base"}))
    assert lmeval.model_args(ModelSpec("/models/ckpt")) == {
        "pretrained": "/models/ckpt",
        "dtype": "auto",
        "device": "cpu",
    }
    assert lmeval.model_args(ModelSpec(str(adapter))) == {
        "pretrained": "/models/base",
        "dtype": "auto",
        "peft": str(adapter),
        "device": "cpu",
    }
    assert lmeval.model_args(ModelSpec(str(adapter), "vllm"))["lora_local_path"] == str(adapter)
    with pytest.raises(UserError, match="hf or vllm"):
        lmeval.model_args(ModelSpec("m", "openai", url="http://x/v1"))


@pytest.mark.integration
def test_lm_eval_task_in_a_study_spec_is_cached_per_task(
    tmp_path, tiny_model_dir, shared_datasets, monkeypatch
):
    """An lm-eval task is a suite entry like any other: in a spec, marked in- or out-of-domain."""
    from conftest import run_stage, spec_from

    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf-datasets"))
    cfg = spec_from(
        {
            "data_dir": str(shared_datasets),
            "eval": {
                "suites": [{"lm_eval": "gsm8k", "domain": "out", "n": 1}],
                "models": [{"id": "tiny", "model": str(tiny_model_dir)}],
                "include": [],
                "max_tokens": 8,
            },
        }
    )
    ws = Workspace(tmp_path / "ws")
    run_stage(ws, cfg, "eval")
    evals = ws.read_table("evals")
    assert set(evals["suite"]) == {"lm-eval:gsm8k"} and set(evals["domain"]) == {"out"}
    assert (evals["n"] == 1).all() and set(evals["level"]) == {"benchmark", "suite"}
    assert run_stage(ws, cfg, "eval", force=True) is not None  # forced: the task's shard is reused
    assert len(ws.shards("evals")) == 1
