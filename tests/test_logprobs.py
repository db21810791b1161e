"""Log-probabilities: exact prompt boundary, reported truncation, and prefix sharing equal to a
plain full forward (values within 1e-5 in fp32, and gradients)."""

from __future__ import annotations

import itertools
import random

import pytest
import torch

from prefdelta.train.batching import micro_batches, plan_batches, shard
from prefdelta.train.logprobs import encode_pairs, prefix_shared_logprobs, sequence_logprobs
from prefdelta.worlds.arith import ArithSpec, make_problems, prompt_text, reference_trace


@pytest.fixture(scope="module")
def texts():
    problems = make_problems(ArithSpec(max_steps=4), 6, seed=5)
    prompts = [prompt_text(p.text) for p in problems]
    chosen = [reference_trace(p) for p in problems]
    rejected = [reference_trace(problems[(i + 2) % 6]) + "\nextra words" * (i % 3) for i in range(6)]
    return prompts, chosen, rejected


def test_prompt_tokens_are_a_prefix_even_where_joint_bpe_would_merge(arith_tokenizer):
    pairs, kept, report = encode_pairs(arith_tokenizer, ["Tom has 3 app"], ["les."], ["les!"])
    p = pairs[0]
    assert kept == [0]
    assert p.prompt == arith_tokenizer("Tom has 3 app")["input_ids"]
    assert p.chosen[-1] == arith_tokenizer.eos_token_id
    assert arith_tokenizer.decode(p.prompt + p.chosen[:-1], skip_special_tokens=True) == "Tom has 3 apples."
    assert report.boundary_merges == 1  # TRL would have moved the boundary here


def test_over_length_pairs_are_truncated_or_dropped_and_reported(arith_tokenizer, caplog):
    prompts = ["Tom has 3 apples.\n", "x " * 40]
    pairs, kept, report = encode_pairs(
        arith_tokenizer, prompts, ["1 + 2 = 3\n#### 3"] * 2, ["#### 9"] * 2, max_length=16
    )
    assert kept == [0] and report.dropped == [1] and report.truncated == [0]
    assert len(pairs[0].prompt) + len(pairs[0].chosen) == 16
    assert (
        len(pairs[0].rejected) == len(arith_tokenizer("#### 9", add_special_tokens=False)["input_ids"]) + 1
    )  # short one keeps EOS
    assert "1 pairs dropped" in report.summary() and "truncated" in caplog.text


def _families(tiny_model_dir, arith_tokenizer):
    from transformers import AutoModelForCausalLM

    from prefdelta.zoo.config import ZooModelSpec
    from prefdelta.zoo.models import make_config

    torch.manual_seed(1)
    gpt2 = AutoModelForCausalLM.from_config(
        make_config(ZooModelSpec(id="g", family="gpt2", hidden=32, layers=2, heads=2), arith_tokenizer)
    )
    llama = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir))
    return {"llama": llama.eval(), "gpt2": gpt2.eval()}


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_prefix_shared_equals_plain_forward(
    family, tiny_model_dir, trained_model_dir, arith_tokenizer, texts
):
    from transformers import AutoModelForCausalLM

    model = (
        AutoModelForCausalLM.from_pretrained(str(trained_model_dir)).eval()
        if family == "llama"
        else _families(tiny_model_dir, arith_tokenizer)["gpt2"]
    )
    pad = arith_tokenizer.pad_token_id
    pairs, _, _ = encode_pairs(arith_tokenizer, *texts)
    conts = [[p.chosen, p.rejected, pairs[i - 1].chosen] for i, p in enumerate(pairs)]
    with torch.no_grad():
        shared = prefix_shared_logprobs(model, [p.prompt for p in pairs], conts, pad, no_grad_slots=(2,))
        seqs = [p.prompt + c for p, cs in zip(pairs, conts, strict=True) for c in cs]
        plens = [len(p.prompt) for p in pairs for _ in range(3)]
        plain = sequence_logprobs(model, seqs, plens, pad).view(len(pairs), 3)
    assert plain.abs().min() > 1.0  # real sums over many tokens, not zeros
    torch.testing.assert_close(shared, plain, rtol=1e-5, atol=1e-5)


def test_gradients_flow_through_the_shared_prompt(trained_model_dir, arith_tokenizer, texts):
    from transformers import AutoModelForCausalLM

    pad = arith_tokenizer.pad_token_id
    pairs, _, _ = encode_pairs(arith_tokenizer, *texts)
    grads = []
    for shared in (True, False):
        model = AutoModelForCausalLM.from_pretrained(str(trained_model_dir))
        if shared:
            lp = prefix_shared_logprobs(
                model, [p.prompt for p in pairs], [[p.chosen, p.rejected] for p in pairs], pad
            )
        else:
            seqs = [p.prompt + c for p in pairs for c in (p.chosen, p.rejected)]
            lp = sequence_logprobs(model, seqs, [len(p.prompt) for p in pairs for _ in range(2)], pad).view(
                -1, 2
            )
        (lp[:, 0] - 0.5 * lp[:, 1]).sum().backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None]))
    assert grads[0].abs().sum() > 0
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-4, atol=1e-5)


def test_batch_plans_are_seeded_partitions():
    a, b = plan_batches(10, 4, 2, seed=3), plan_batches(10, 4, 2, seed=3)
    assert a == b and [len(x) for x in a] == [4, 4, 2, 4, 4, 2]
    assert sorted(itertools.chain(*a[:3])) == list(range(10))
    assert plan_batches(10, 4, 1, seed=4) != a[:3]
    assert shard([1, 2, 3, 4, 5], 0, 2) + shard([1, 2, 3, 4, 5], 1, 2) == [1, 2, 3, 4, 5]
    assert shard([7], 1, 2) == []


def test_micro_batches_cover_each_index_once_within_budget():
    rng = random.Random(0)
    lengths = [rng.randint(80, 400) for _ in range(37)]
    groups = micro_batches(lengths, max_tokens=1200)
    assert sorted(itertools.chain(*groups)) == list(range(37))
    for g in groups:
        assert len(g) == 1 or len(g) * max(lengths[i] for i in g) <= 1200
    assert micro_batches([5, 1, 3], None) == [[1, 2, 0]]


def test_one_token_prompts_fall_back_to_the_plain_forward(trained_model_dir, arith_tokenizer):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(trained_model_dir))
    bos = [arith_tokenizer.bos_token_id]
    conts = [[[5, 6, 7], [8, 9]], [[10], [11, 12, 13]]]
    lp = prefix_shared_logprobs(model, [bos, bos], conts, arith_tokenizer.pad_token_id, no_grad_slots=(1,))
    plain = sequence_logprobs(
        model, [bos + c for cs in conts for c in cs], [1] * 4, arith_tokenizer.pad_token_id
    )
    torch.testing.assert_close(lp.detach().reshape(-1), plain.detach(), rtol=1e-5, atol=1e-5)
    assert lp.requires_grad
