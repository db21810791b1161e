"""lm-evaluation-harness runs offline on a tiny local model with the shipped local-file tasks."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from conftest import ROOT
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


# ---- lm-eval on a served model (lm-eval's local-completions / local-chat-completions) ----------
def test_served_model_args_name_the_endpoint_and_a_local_tokenizer(tmp_path, tiny_model_dir):
    from prefdelta.errors import UserError
    from prefdelta.evaluate.config import LmEvalServed
    from prefdelta.evaluate.models import ModelSpec

    url = "http://127.0.0.1:9/v1/"
    model, args = lmeval.api_model_args(ModelSpec(str(tiny_model_dir), "openai", url=url), LmEvalServed())
    assert model == "local-completions"
    assert args["model"] == str(tiny_model_dir) and args["base_url"] == "http://127.0.0.1:9/v1/completions"
    # the served folder is the tokenizer: lm-eval never turns the model name into a hub download
    assert args["tokenizer_backend"] == "huggingface" and args["tokenizer"] == str(tiny_model_dir)
    assert args["tokenized_requests"] is False
    chat = LmEvalServed(api="chat-completions", num_concurrent=4)
    model, args = lmeval.api_model_args(ModelSpec("org/some-model", "openai", url=url), chat)
    assert model == "local-chat-completions" and args["base_url"].endswith("/v1/chat/completions")
    assert args["tokenizer_backend"] == "none" and "tokenizer" not in args and args["num_concurrent"] == 4
    given = LmEvalServed(tokenizer=str(tiny_model_dir))
    _, args = lmeval.api_model_args(ModelSpec("org/some-model", "openai", url=url), given)
    assert args["tokenizer"] == str(tiny_model_dir) and args["tokenizer_backend"] == "huggingface"
    with pytest.raises(UserError, match=r"eval.lm_eval_served.tokenizer: .*not a local tokenizer folder"):
        lmeval.api_model_args(
            ModelSpec("m", "openai", url=url), LmEvalServed(tokenizer=str(tmp_path / "none"))
        )
    with pytest.raises(UserError, match="needs its server's /v1 URL"):
        lmeval.api_model_args(ModelSpec("m", "openai"), LmEvalServed())


def _one(pattern, folder):
    found = sorted(folder.glob(pattern))
    assert len(found) == 1, (pattern, sorted(p.name for p in folder.iterdir()))
    return found[0]


def test_lm_eval_on_a_scripted_server_writes_rows_and_its_own_files(tmp_path, shared_datasets, monkeypatch):
    """The whole bridge through `prefdelta eval` against a local OpenAI-compatible server that
    fails each request's first attempt with HTTP 500 (lm-eval retries), then answers the first
    question right and the others wrong."""
    from prefdelta.generate.scripted_server import ScriptedServer

    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf-datasets"))
    docs = [json.loads(x) for x in (shared_datasets / "gsm8k/test.jsonl").read_text().splitlines()[:3]]
    gold = docs[0]["answer"].split("####")[-1].strip()

    class Answering(ScriptedServer):
        def _answer(self, body, chat):
            out = super()._answer(body, chat)
            asked = body["prompt"] if "prompt" in body else body["messages"][-1]["content"]
            k = next(i for i, doc in enumerate(docs) if doc["question"] in asked)
            out["choices"][0]["text"] = f"problem {k}\n#### {gold if k == 0 else -1}"
            return out

    ws = tmp_path / "ws"
    bodies: list[dict] = []

    def script(body, attempt):
        bodies.append(body)
        return "500" if attempt == 0 else "ok"

    with Answering(script) as server:
        main(
            [
                "eval", "-m", "scripted-model", "--backend", "openai", "--url", server.url, "--model-id", "served",
                "--tasks", "gsm8k", "-d", str(shared_datasets), "--limit", "3", "-w", str(ws),
            ]
        )  # fmt: skip
    assert all(b["model"] == "scripted-model" for b in bodies)
    # each of the 3 problems was asked twice: failed once, answered on lm-eval's retry
    assert sorted(Counter(b["prompt"] for b in bodies).values()) == [2, 2, 2]
    evals = Workspace(ws).read_table("evals")
    assert (evals["model_id"] == "served").all() and set(evals["suite"]) == {"lm-eval:gsm8k"}
    evals = evals[evals["level"] == "benchmark"]
    assert list(evals["benchmark"]) == ["gsm8k"] and int(evals["n"].iloc[0]) == 3
    assert float(evals["value"].iloc[0]) == pytest.approx(1 / 3)
    samples = Workspace(ws).read_table("eval_samples").sort_values("problem_id")
    assert list(samples["correct"]) == [True, False, False]
    assert list(samples["text"]) == [f"problem 0\n#### {gold}", "problem 1\n#### -1", "problem 2\n#### -1"]
    # lm-eval's own files, as its --output_path/--log_samples write them
    out = ws / "lm-eval" / "served"
    results = json.loads(_one("results_*.json", out).read_text())
    assert results["results"]["prefdelta_gsm8k"]["acc,none"] == pytest.approx(1 / 3)
    assert results["model_name"] == "scripted-model"
    assert results["n-samples"]["prefdelta_gsm8k"]["effective"] == 3
    lines = [json.loads(x) for x in _one("samples_prefdelta_gsm8k_*.jsonl", out).read_text().splitlines()]
    by_doc = {x["doc_id"]: x for x in lines}
    assert [by_doc[i]["resps"][0][0] for i in range(3)] == list(samples["text"])
    assert [by_doc[i]["acc"] for i in range(3)] == [1.0, 0.0, 0.0]
    assert not [p for p in (ws / "lm-eval").iterdir() if p.name.startswith(".tmp-")]  # no scratch left

    # chat-completions: the prompt goes as a user message; no samples file when asked not to
    bodies.clear()
    with Answering(script) as server:
        main(
            [
                "eval", "-m", "scripted-model", "--backend", "openai", "--url", server.url, "--model-id", "chat",
                "--tasks", "gsm8k", "-d", str(shared_datasets), "--limit", "1", "-w", str(ws),
                "--lm-eval-api", "chat-completions", "--no-log-samples",
            ]
        )  # fmt: skip
    assert bodies and all(b["messages"][-1]["role"] == "user" and "prompt" not in b for b in bodies)
    assert "Question:" in bodies[-1]["messages"][-1]["content"]
    names = sorted(p.name for p in (ws / "lm-eval" / "chat").iterdir())
    assert len(names) == 1 and names[0].startswith("results_")


def test_a_bad_lm_eval_api_is_a_user_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(
            [
                "eval", "-m", "x", "--backend", "openai", "--url", "http://127.0.0.1:9/v1", "--tasks", "gsm8k",
                "--lm-eval-api", "responses", "-w", str(tmp_path / "ws"),
            ]
        )  # fmt: skip
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "lm_eval_served.api" in err and "Traceback" not in err


@pytest.mark.integration
def test_lm_eval_on_transformers_serve_equals_lm_eval_in_process(tmp_path, shared_datasets, monkeypatch):
    """SmolLM2 behind a real `transformers serve`: lm-eval's local-completions through
    `prefdelta eval --backend openai` gives the same greedy texts as lm-eval's own hf model."""
    from prefdelta.evaluate.models import ModelSpec
    from prefdelta.modelfiles import convert_gguf, smollm2_gguf
    from test_serve_transformers import transformers_serve

    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf-datasets"))
    smol = convert_gguf(smollm2_gguf(), ROOT / "models" / "SmolLM2-135M-Instruct")
    ws = tmp_path / "ws"
    with transformers_serve(smol, tmp_path / "serve.log") as url:
        main(
            [
                "eval", "-m", str(smol), "--backend", "openai", "--url", url, "--model-id", "smol-served",
                "--tasks", "gsm8k", "-d", str(shared_datasets), "--limit", "3", "--max-tokens", "24",
                "-w", str(ws),
            ]
        )  # fmt: skip
    samples = Workspace(ws).read_table("eval_samples").sort_values("problem_id")
    assert len(samples) == 3 and samples["text"].map(len).gt(0).any()
    local = lmeval.run(
        ModelSpec(str(smol)),
        ["gsm8k"],
        shared_datasets,
        limit=3,
        batch_size=3,
        gen_kwargs={"max_gen_toks": 24},
    )
    expected = [
        s["resps"][0][0] for s in sorted(local["samples"]["prefdelta_gsm8k"], key=lambda s: s["doc_id"])
    ]
    assert list(samples["text"]) == expected
    out = ws / "lm-eval" / "smol-served"
    results = json.loads(_one("results_*.json", out).read_text())
    assert results["config"]["model"] == "local-completions"
    evals = Workspace(ws).read_table("evals")
    evals = evals[evals["level"] == "benchmark"]
    assert results["results"]["prefdelta_gsm8k"]["acc,none"] == float(evals["value"].iloc[0])
    assert len(_one("samples_prefdelta_gsm8k_*.jsonl", out).read_text().splitlines()) == 3
