"""The trainer: resumable after a kill, the shared reference cache, KTO, LoRA, metrics, files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from prefdelta.errors import UserError
from prefdelta.train.config import LoraConfig, TrainHyper
from prefdelta.train.launch import parse_hyper, read_pairs
from prefdelta.train.logprobs import encode_pairs
from prefdelta.train.trainer import train_preference
from prefdelta.worlds.arith import ArithSpec, make_problems, prompt_text, reference_trace

HP = TrainHyper(
    lr=1e-3, epochs=2, batch_size=4, beta=0.2, nll_weight=0.3, warmup_ratio=0.2, max_tokens_per_forward=300
)


@pytest.fixture(scope="module")
def pairs(arith_tokenizer):
    problems = make_problems(ArithSpec(max_steps=3), 10, seed=21)
    prompts = [prompt_text(p.text) for p in problems]
    chosen = [reference_trace(p) for p in problems]
    rejected = [reference_trace(problems[(i + 3) % 10]) for i in range(10)]
    return encode_pairs(arith_tokenizer, prompts, chosen, rejected)[0]


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


def _per_token_gap(model_dir: Path, pairs) -> float:
    """Mean over pairs of the per-token log-prob of chosen minus rejected under a model."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from prefdelta.train.logprobs import prefix_shared_logprobs

    model = AutoModelForCausalLM.from_pretrained(str(model_dir))
    pad = AutoTokenizer.from_pretrained(str(model_dir)).pad_token_id
    with torch.no_grad():
        lp = prefix_shared_logprobs(
            model, [p.prompt for p in pairs], [[p.chosen, p.rejected] for p in pairs], pad
        )
    lens = torch.tensor([[len(p.chosen), len(p.rejected)] for p in pairs], dtype=torch.float32)
    per_token = lp / lens
    return float((per_token[:, 0] - per_token[:, 1]).mean())


class Killed(Exception):
    pass


@pytest.mark.integration
def test_resume_after_kill_ends_with_the_same_weights_and_metrics(tmp_path, trained_model_dir, pairs):
    hp = HP.model_copy(update={"save_steps": 2})
    cache = tmp_path / "refcache"
    train_preference(trained_model_dir, pairs, hp, tmp_path / "whole", ref_cache_root=cache)

    def kill_at_3(step: int, total: int, metrics: dict[str, float]) -> None:
        if step == 3:
            raise Killed

    with pytest.raises(Killed):
        train_preference(
            trained_model_dir, pairs, hp, tmp_path / "resumed", ref_cache_root=cache, on_step=kill_at_3
        )
    assert json.loads((tmp_path / "resumed" / "checkpoint" / "state.json").read_text()) == {"step": 2}
    last = train_preference(trained_model_dir, pairs, hp, tmp_path / "resumed", ref_cache_root=cache)
    assert last["ref_computed"] == 0  # every reference log-prob came from the shared cache

    whole, resumed = _weights(tmp_path / "whole" / "final"), _weights(tmp_path / "resumed" / "final")
    start = _weights(trained_model_dir)
    assert any(not torch.equal(whole[k], start[k]) for k in whole)
    for k in whole:
        torch.testing.assert_close(resumed[k], whole[k], rtol=1e-6, atol=1e-7)
    m_whole = [json.loads(x) for x in (tmp_path / "whole" / "metrics.jsonl").read_text().splitlines()]
    m_res = [json.loads(x) for x in (tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in m_res] == list(range(1, 7)) == [m["step"] for m in m_whole]
    assert [m["loss"] for m in m_res] == pytest.approx([m["loss"] for m in m_whole], rel=1e-6)
    assert not (tmp_path / "resumed" / "checkpoint").exists()
    for key in (
        "loss",
        "rewards_chosen",
        "rewards_rejected",
        "margin",
        "preference_accuracy",
        "logp_chosen",
        "logp_rejected",
    ):
        assert key in m_whole[-1]
    assert m_whole[-1]["margin"] > m_whole[0]["margin"]  # it learns the preferences


@pytest.mark.integration
def test_micro_batching_and_grad_accum_do_not_change_the_numbers(tmp_path, trained_model_dir, pairs):
    cache = tmp_path / "refcache"
    base = HP.model_copy(update={"epochs": 1, "batch_size": 4, "nll_weight": 0.0})
    runs = {
        "one_forward": base.model_copy(update={"max_tokens_per_forward": None}),
        "micro": base,
        "accum": base.model_copy(update={"batch_size": 2, "grad_accum": 2}),
    }
    curves = {}
    for name, hp in runs.items():
        train_preference(trained_model_dir, pairs, hp, tmp_path / name, ref_cache_root=cache)
        curves[name] = [
            json.loads(x)["loss"] for x in (tmp_path / name / "metrics.jsonl").read_text().splitlines()
        ]
    assert curves["micro"] == pytest.approx(curves["one_forward"], rel=1e-5)
    # 2 batches of 2 pairs accumulated = the same 4 pairs (plans cut one seeded order)
    assert curves["accum"] == pytest.approx(curves["one_forward"], rel=1e-5)
    w = [_weights(tmp_path / name / "final") for name in runs]
    for k in w[0]:
        # Adam divides by sqrt(v): a gradient element near zero, summed in another order, can
        # move its weight by a few 1e-5 (one of 12,800 did, 3e-5, with the world's tokenizer)
        torch.testing.assert_close(w[1][k], w[0][k], rtol=1e-4, atol=5e-5)
        torch.testing.assert_close(w[2][k], w[0][k], rtol=1e-4, atol=5e-5)


@pytest.mark.integration
def test_kto_and_lora_runs_save_loadable_models(tmp_path, trained_model_dir, pairs):
    from transformers import AutoModelForCausalLM

    hp = TrainHyper(
        **{
            **HP.model_dump(),
            "algorithm": "kto",
            "epochs": 1,
            "lr": 5e-3,
            "report_to": ["tensorboard"],
            "lora": LoraConfig(r=4, alpha=8),
        }
    )
    last = train_preference(trained_model_dir, pairs, hp, tmp_path / "kto", ref_cache_root=tmp_path / "rc")
    assert "kl" in last and last["kl"] >= 0.0
    model = AutoModelForCausalLM.from_pretrained(
        str(tmp_path / "kto" / "final")
    )  # merged LoRA: a plain model
    merged = dict(model.named_parameters())
    start = AutoModelForCausalLM.from_pretrained(str(trained_model_dir))
    assert any(not torch.equal(p, merged[n]) for n, p in start.named_parameters())
    assert any((tmp_path / "kto" / "tb").iterdir())


def test_pairs_file_and_hyper_errors_name_the_place(tmp_path):
    path = tmp_path / "pairs.jsonl"
    path.write_text(
        '{"prompt": "a", "chosen": "b", "rejected": "c"}\n{"prompt": "a", "chosen": 3, "rejected": "c"}\n'
    )
    with pytest.raises(UserError, match=r"pairs.jsonl:2: field 'chosen'"):
        read_pairs(path)
    path.write_text('{"prompt": "a", "chosen": "b", "rejected": "c"}\n{oops\n')
    with pytest.raises(UserError, match=r"pairs.jsonl:2:2: not valid JSON"):
        read_pairs(path)
    with pytest.raises(UserError, match=r"--hyper: field .betta.: Extra inputs are not permitted"):
        parse_hyper('{"betta": 0.1}')
    assert parse_hyper('{"algorithm": "kto"}').algorithm == "kto"


@pytest.mark.integration
@pytest.mark.parametrize(
    ("algorithm", "extra"), [("simpo", {"beta": 2.0, "simpo_gamma": 1.0}), ("orpo", {"beta": 0.5})]
)
def test_reference_free_losses_train_without_a_reference(
    tmp_path, monkeypatch, trained_model_dir, pairs, algorithm, extra
):
    from prefdelta.train import refcache

    def no_reference(*args, **kwargs):
        raise AssertionError("a reference-free loss touched the reference cache")

    monkeypatch.setattr(refcache.RefCache, "__init__", no_reference)
    hp = HP.model_copy(update={"algorithm": algorithm, "nll_weight": 0.0, "lr": 3e-3, **extra})
    last = train_preference(trained_model_dir, pairs, hp, tmp_path / "run", ref_cache_root=tmp_path / "rc")
    assert not (tmp_path / "rc").exists()
    assert last["ref_computed"] == 0
    curve = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert len(curve) == 6 and "kl" not in curve[-1]
    # it learns the preferences: the per-token log-prob gap, chosen over rejected, widens
    assert _per_token_gap(tmp_path / "run" / "final", pairs) > _per_token_gap(trained_model_dir, pairs)
    if algorithm == "orpo":  # the SFT term is part of the objective: loss > the odds-ratio term
        assert "log_odds" in curve[-1]
        assert all(m["loss"] > m["nll_chosen"] > 0 for m in curve)


@pytest.mark.integration
def test_stage_job_of_a_simpo_variant_leaves_the_shared_cache_alone(tmp_path, trained_model_dir):
    from prefdelta.train.config import TrainConfig
    from prefdelta.train.stage import prewarm_reference, train_job

    tc = TrainConfig(
        batch_size=2,
        epochs=1,
        variants={"simpo": {"algorithm": "simpo", "beta": 2.0}, "orpo": {"algorithm": "orpo"}},
    )
    sets = tc.hyper_sets()
    assert [h.algorithm for h in sets.values()] == ["dpo", "simpo", "orpo"]
    problems = make_problems(ArithSpec(max_steps=2), 4, seed=5)
    job = {
        "model": str(trained_model_dir),
        "prompts": [prompt_text(p.text) for p in problems],
        "chosen": [reference_trace(p) for p in problems],
        "rejected": [reference_trace(problems[(i + 1) % 4]) for i in range(4)],
        "hp": tc.run_hyper(sets["simpo"], 0, LoraConfig()).model_dump_json(),
        "run_dir": str(tmp_path / "simpo-run"),
        "ref_cache": str(tmp_path / "refcache"),
    }
    prewarm_reference(job["model"], [job])  # what train.workers > 1 does first: nothing to warm
    train_job(job)
    assert not (tmp_path / "refcache").exists()
    assert (tmp_path / "simpo-run" / "final" / "config.json").is_file()
    record = json.loads((tmp_path / "simpo-run" / "truncation.json").read_text())
    assert "logp_per_token_chosen" not in record  # on-policyness reads reference log-probs
