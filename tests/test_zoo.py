"""Zoo models and tokenizer go through a folder and come back the way a user's model does."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from prefdelta.checkpoints import save_model
from prefdelta.worlds.arith import ArithSpec, make_problems, prompt_text, reference_trace
from prefdelta.zoo.config import ZooModelSpec
from prefdelta.zoo.models import encode_examples, make_config, train_generator


def test_tokenizer_round_trips_text_exactly(arith_tokenizer):
    for p in make_problems(ArithSpec(templates="mixed", distractors=1), 50, seed=4):
        text = prompt_text(p.text) + reference_trace(p)
        ids = arith_tokenizer(text, add_special_tokens=False)["input_ids"]
        assert arith_tokenizer.decode(ids) == text
    digits = arith_tokenizer.tokenize("12345")
    assert digits == ["1", "2", "3", "4", "5"]


def test_prompt_tokens_are_a_prefix(arith_tokenizer):
    ps = make_problems(ArithSpec(), 20, seed=5)
    prompts = [prompt_text(p.text) for p in ps]
    examples = encode_examples(arith_tokenizer, prompts, [reference_trace(p) for p in ps])
    for (ids, n_prompt), prompt in zip(examples, prompts, strict=True):
        assert ids[:n_prompt] == arith_tokenizer(prompt)["input_ids"]
        assert ids[-1] == arith_tokenizer.eos_token_id


@pytest.mark.parametrize("family", ["llama", "gpt2", "qwen2"])
def test_model_and_tokenizer_round_trip_through_folder(tmp_path, arith_tokenizer, family):
    torch.manual_seed(0)
    spec = ZooModelSpec(id=family, family=family, hidden=32, layers=1, heads=2)
    model = AutoModelForCausalLM.from_config(make_config(spec, arith_tokenizer)).eval()
    save_model(model, arith_tokenizer, tmp_path / family)
    assert not (tmp_path / f"{family}.tmp").exists()
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path / family).eval()
    tok = AutoTokenizer.from_pretrained(tmp_path / family)
    text = "Ann has 7 apples. She buys 5 more.\n7+5=<<7+5=12>>12"
    assert tok(text)["input_ids"] == arith_tokenizer(text)["input_ids"]
    ids = tok(text, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        torch.testing.assert_close(loaded(ids).logits, model(ids).logits)
    assert json.loads((tmp_path / family / "config.json").read_text())["model_type"] == family


def test_training_lowers_loss_and_saves_snapshots(tmp_path, arith_tokenizer):
    spec = ZooModelSpec(
        id="t",
        family="llama",
        hidden=32,
        layers=1,
        heads=2,
        steps=30,
        warmup=3,
        lr=0.01,
        snapshots={"t-early": 10},
    )
    problems = make_problems(ArithSpec(), 200, seed=0)
    stats = train_generator(
        spec, arith_tokenizer, problems, tmp_path / "t", snapshot_dirs={10: tmp_path / "t-early"}
    )
    assert stats["params"] > 1000
    assert stats["final_loss"] < 4.0  # from ~ln(400) = 6 at random init
    for folder in ("t", "t-early"):
        AutoModelForCausalLM.from_pretrained(tmp_path / folder)


def test_bad_zoo_spec_messages():
    with pytest.raises(ValueError, match="divisible"):
        ZooModelSpec(id="x", hidden=30, heads=4)
    with pytest.raises(ValueError, match="snapshot"):
        ZooModelSpec(id="x", steps=10, snapshots={"y": 20})
