"""Exported DPO and KTO files load into TRL's trainers and run one step on a tiny model."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch

from prefdelta.judge import oracle
from prefdelta.pairs import build as pairs
from prefdelta.pairs import export
from prefdelta.select import strategies as select
from prefdelta.worlds import arith

pytestmark = pytest.mark.integration

CHAT_TEMPLATE = (
    "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant: {% endif %}"
)


def _world(n: int = 8) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Arith problems; 'strong' writes the reference trace, 'weak' one with a slipped answer.

    The traces carry their prompts as the generate stage stores them: 'strong' was sampled
    through :data:`CHAT_TEMPLATE` (messages and their rendering), 'weak' from the plain prompt.
    """
    problems = arith.make_problems(arith.ArithSpec(), n, seed=5)
    prows, trows, jrows = [], [], []
    for p in problems:
        prows.append({"problem_id": p.problem_id, "prompt": arith.prompt_text(p.text)})
        ref = arith.reference_trace(p)
        texts = {"strong": ref, "weak": ref.rsplit("\n", 1)[0] + f"\n#### {p.answer + 1}"}
        prompt = arith.prompt_text(p.text)
        sent = {
            "strong": (f"user: {prompt}\nassistant: ", json.dumps([{"role": "user", "content": prompt}])),
            "weak": (prompt, None),
        }
        for gen, text in texts.items():
            tid = f"{gen}-{p.problem_id}"
            prompt_text, messages = sent[gen]
            trows.append(
                {
                    "trace_id": tid,
                    "problem_id": p.problem_id,
                    "generator_id": gen,
                    "text": text,
                    "prompt_text": prompt_text,
                    "prompt_messages": messages,
                }
            )
            jrows.append({"trace_id": tid, **oracle.oracle_judge(p, text)})
    gens = pd.DataFrame(
        {"generator_id": ["strong", "weak"], "family": ["llama", "llama"], "params": [2e6, 1e6]}
    )
    return pd.DataFrame(prows), pd.DataFrame(trows), pd.DataFrame(jrows), gens


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> dict[str, Path]:
    problems, traces, judgments, gens = _world()
    built = pairs.cross_generator_pairs(traces, pairs.trace_scores(judgments), gens)
    sel = select.select_all(built)
    out = tmp_path_factory.mktemp("export")
    files = {}
    for fmt, container in (
        ("dpo", "jsonl"),
        ("dpo-conversational", "parquet"),
        ("kto", "dataset"),
        ("kto-conversational", "jsonl"),
    ):
        path = out / f"{fmt}.{container}"
        res = export.export(
            built,
            traces,
            problems,
            path,
            fmt=fmt,
            container=container,
            selections=sel,
            selection_id=sel["selection_id"].iloc[0],
        )
        assert res.records == (len(built) if fmt.startswith("dpo") else 2 * len(built))
        files[fmt] = path
    return files


def _load(path: Path):
    from datasets import Dataset, load_dataset, load_from_disk

    if path.is_dir():
        return load_from_disk(str(path))
    if path.suffix == ".parquet":
        return Dataset.from_parquet(str(path))
    return load_dataset("json", data_files=str(path), split="train")


def _model_and_tokenizer(model_dir: Path, chat: bool):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(1)
    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(str(model_dir))
    if chat:
        tok.chat_template = CHAT_TEMPLATE
    return AutoModelForCausalLM.from_pretrained(str(model_dir)), tok


def _common(tmp_path: Path) -> dict[str, object]:
    return {
        "output_dir": str(tmp_path / "out"),
        "max_steps": 1,
        "per_device_train_batch_size": 2,
        "learning_rate": 1e-3,
        "report_to": [],
        "use_cpu": True,
        "bf16": False,
        "activation_checkpointing": False,
        "save_strategy": "no",
        "logging_steps": 1,
        "max_length": 128,
        "dataloader_num_workers": 0,
        "seed": 0,
    }


def _weights(model) -> torch.Tensor:
    return torch.cat([p.detach().flatten().clone() for p in model.parameters()])


@pytest.mark.parametrize("fmt", ["dpo", "dpo-conversational"])
def test_dpo_export_trains_one_step_in_trl(exported, tiny_model_dir, tmp_path, fmt):
    from trl import DPOConfig, DPOTrainer

    ds = _load(exported[fmt])
    assert set(ds.column_names) == {"prompt", "chosen", "rejected"}
    # the training prompt is the chosen ('strong') trace's sampling prompt, chat template and all
    first = ds[0]["prompt"]
    if fmt == "dpo":
        assert first.startswith("user: ") and first.endswith("\nassistant: ")
    else:
        assert [m["role"] for m in first] == ["user"] and not first[0]["content"].startswith("user: ")
    model, tok = _model_and_tokenizer(tiny_model_dir, chat=fmt.endswith("conversational"))
    before = _weights(model)
    trainer = DPOTrainer(
        model=model, args=DPOConfig(beta=0.1, **_common(tmp_path)), train_dataset=ds, processing_class=tok
    )
    result = trainer.train()
    assert result.global_step == 1
    assert torch.isfinite(torch.tensor(result.training_loss))
    assert not torch.equal(before, _weights(trainer.model))


@pytest.mark.parametrize("fmt", ["kto", "kto-conversational"])
def test_kto_export_trains_one_step_in_trl(exported, tiny_model_dir, tmp_path, fmt):
    from trl import KTOConfig, KTOTrainer

    ds = _load(exported[fmt])
    assert set(ds.column_names) == {"prompt", "completion", "label"}
    assert ds["label"][:4] == [True, False, True, False]  # interleaved
    if fmt == "kto":  # each completion with the prompt its own trace was sampled from
        assert all(p.startswith("user: ") == lab for p, lab in zip(ds["prompt"], ds["label"], strict=True))
    model, tok = _model_and_tokenizer(tiny_model_dir, chat=fmt.endswith("conversational"))
    before = _weights(model)
    args = KTOConfig(beta=0.1, **{**_common(tmp_path), "per_device_train_batch_size": 4})
    trainer = KTOTrainer(model=model, args=args, train_dataset=ds, processing_class=tok)
    result = trainer.train()
    assert result.global_step == 1
    assert torch.isfinite(torch.tensor(result.training_loss))
    assert not torch.equal(before, _weights(trainer.model))
