"""Parity with TRL 1.16: on the same tiny models and batch, the native DPO/KTO/SimPO/ORPO losses and
per-sequence log-probs equal TRL's within 1e-4 relative (``trl`` is a test extra)."""

from __future__ import annotations

import pytest
import torch

from prefdelta.train.logprobs import encode_pairs, prefix_shared_logprobs
from prefdelta.train.losses import dpo_loss, kto_kl_estimate, kto_loss, nll_loss
from prefdelta.worlds.arith import ArithSpec, make_problems, prompt_text, reference_trace

trl = pytest.importorskip("trl")
pytestmark = pytest.mark.filterwarnings("ignore")
RTOL = 1e-4


@pytest.fixture(scope="module")
def batch_texts():
    problems = make_problems(ArithSpec(), 4, seed=11)
    prompts = [prompt_text(p.text) for p in problems]
    chosen = [reference_trace(p) for p in problems]
    rejected = [reference_trace(problems[(i + 1) % 4]) for i in range(4)]  # a wrong trace for each prompt
    return prompts, chosen, rejected


@pytest.fixture(scope="module")
def models(trained_model_dir, tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(trained_model_dir))
    policy = AutoModelForCausalLM.from_pretrained(str(trained_model_dir))
    ref = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir))
    return tok, policy, ref


def _native_logps(model, pairs, conts, pad):
    with torch.no_grad():
        return prefix_shared_logprobs(model, [p.prompt for p in pairs], conts, pad)


@pytest.mark.integration
@pytest.mark.parametrize(
    ("loss_type", "trl_types", "weights", "nll_weight"),
    [
        ("sigmoid", ["sigmoid"], None, 0.0),
        ("ipo", ["ipo"], None, 0.0),
        ("hinge", ["hinge"], None, 0.0),
        ("sigmoid", ["sigmoid", "sft"], [1.0, 0.5], 0.5),  # RPO
    ],
)
def test_dpo_loss_and_logps_match_trl(
    tmp_path, models, batch_texts, loss_type, trl_types, weights, nll_weight
):
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    tok, policy, ref = models
    prompts, chosen, rejected = batch_texts
    args = DPOConfig(
        output_dir=str(tmp_path),
        per_device_train_batch_size=4,
        beta=0.2,
        loss_type=trl_types,
        loss_weights=weights,
        report_to=[],
        use_cpu=True,
        bf16=False,  # TRL 1.x defaults to bf16 autocast; parity is checked in fp32
    )
    ds = Dataset.from_dict({"prompt": prompts, "chosen": chosen, "rejected": rejected})
    trainer = DPOTrainer(model=policy, ref_model=ref, args=args, train_dataset=ds, processing_class=tok)
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(4)])
    with torch.no_grad():
        trl_loss = float(trainer.compute_loss(trainer.model, batch))
        trl_pc, trl_pr = trainer.compute_ref_log_probs(trainer.model, batch)

    pairs, kept, report = encode_pairs(tok, prompts, chosen, rejected)
    assert kept == [0, 1, 2, 3] and report.boundary_merges == 0
    conts = [[p.chosen, p.rejected] for p in pairs]
    lp = _native_logps(policy, pairs, conts, tok.pad_token_id)
    rf = _native_logps(ref, pairs, conts, tok.pad_token_id)
    torch.testing.assert_close(lp[:, 0], trl_pc, rtol=RTOL, atol=0)
    torch.testing.assert_close(lp[:, 1], trl_pr, rtol=RTOL, atol=0)
    lens_c = torch.tensor([len(p.chosen) for p in pairs], dtype=torch.float32)
    lens_r = torch.tensor([len(p.rejected) for p in pairs], dtype=torch.float32)
    out = dpo_loss(
        lp[:, 0],
        lp[:, 1],
        rf[:, 0],
        rf[:, 1],
        beta=0.2,
        loss_type=loss_type,
        chosen_lengths=lens_c,
        rejected_lengths=lens_r,
    )
    native = float(out.loss) + nll_weight * float(nll_loss(lp[:, 0], lens_c))
    assert native == pytest.approx(trl_loss, rel=RTOL)
    assert abs(trl_loss) > 1e-3  # a real, non-degenerate loss


@pytest.mark.integration
@pytest.mark.parametrize(("dw", "uw"), [(1.0, 1.0), (1.5, 0.7)])
def test_kto_loss_and_logps_match_trl(tmp_path, models, batch_texts, dw, uw):
    from datasets import Dataset
    from trl import KTOConfig, KTOTrainer

    tok, policy, ref = models
    prompts, chosen, rejected = batch_texts
    n = len(prompts)
    # TRL's KL completions rotate by one within the batch: with [chosen..., rejected...]
    # example i gets example i-1's completion, i.e. prompt j gets both completions of pair j-1.
    ds = Dataset.from_dict(
        {"prompt": prompts * 2, "completion": chosen + rejected, "label": [True] * n + [False] * n}
    )
    args = KTOConfig(
        output_dir=str(tmp_path),
        per_device_train_batch_size=2 * n,
        beta=0.2,
        desirable_weight=dw,
        undesirable_weight=uw,
        report_to=[],
        use_cpu=True,
        bf16=False,  # TRL 1.x defaults to bf16 autocast; parity is checked in fp32
        train_sampling_strategy="sequential",
    )
    trainer = KTOTrainer(model=policy, ref_model=ref, args=args, train_dataset=ds, processing_class=tok)
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(2 * n)])
    with torch.no_grad():
        trl_loss = float(trainer.compute_loss(trainer.model, batch))
        trl_lp, trl_kl_lp = trainer.compute_ref_log_probs(trainer.model, batch)

    pairs, _, _ = encode_pairs(tok, prompts, chosen, rejected)
    conts = [[p.chosen, p.rejected, pairs[j - 1].chosen, pairs[j - 1].rejected] for j, p in enumerate(pairs)]
    lp = _native_logps(policy, pairs, conts, tok.pad_token_id)
    rf = _native_logps(ref, pairs, conts, tok.pad_token_id)
    torch.testing.assert_close(torch.cat([lp[:, 0], lp[:, 1]]), trl_lp, rtol=RTOL, atol=0)
    # TRL order of KL sequences: example i (prompt i mod n) with completion i-1
    native_kl = torch.cat([torch.cat([lp[:1, 3], lp[1:, 2]]), torch.cat([lp[:1, 2], lp[1:, 3]])])
    torch.testing.assert_close(native_kl, trl_kl_lp, rtol=RTOL, atol=0)
    kl = kto_kl_estimate(lp[:, 2:].reshape(-1), rf[:, 2:].reshape(-1))
    out = kto_loss(
        torch.cat([lp[:, 0], lp[:, 1]]),
        torch.cat([rf[:, 0], rf[:, 1]]),
        torch.tensor([True] * n + [False] * n),
        kl,
        beta=0.2,
        desirable_weight=dw,
        undesirable_weight=uw,
    )
    assert float(kl) > 0  # the reference point is exercised, not clamped away
    assert float(out.loss) == pytest.approx(trl_loss, rel=RTOL)


def _native_pair_logps(tok, policy, prompts, chosen, rejected):
    pairs, kept, _ = encode_pairs(tok, prompts, chosen, rejected)
    assert kept == list(range(len(prompts)))
    lp = _native_logps(policy, pairs, [[p.chosen, p.rejected] for p in pairs], tok.pad_token_id)
    lens = torch.tensor([[len(p.chosen), len(p.rejected)] for p in pairs], dtype=torch.float32)
    return lp, lens


@pytest.mark.integration
@pytest.mark.parametrize(("beta", "gamma", "smoothing"), [(2.0, 1.0, 0.0), (2.5, 1.25, 0.1)])
def test_simpo_loss_matches_trl_cpo(tmp_path, models, batch_texts, beta, gamma, smoothing):
    from datasets import Dataset
    from trl.experimental.cpo import CPOConfig, CPOTrainer

    from prefdelta.train.losses.simpo import simpo_loss

    tok, policy, _ = models
    prompts, chosen, rejected = batch_texts
    args = CPOConfig(
        output_dir=str(tmp_path),
        per_device_train_batch_size=4,
        loss_type="simpo",
        cpo_alpha=0.0,  # pure SimPO: no behaviour-cloning term
        beta=beta,
        simpo_gamma=gamma,
        label_smoothing=smoothing,
        report_to=[],
        use_cpu=True,
        bf16=False,
    )
    ds = Dataset.from_dict({"prompt": prompts, "chosen": chosen, "rejected": rejected})
    trainer = CPOTrainer(model=policy, args=args, train_dataset=ds, processing_class=tok)
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(4)])
    with torch.no_grad():
        trl_loss = float(trainer.compute_loss(trainer.model, batch))
        trl_c, trl_r = trainer.concatenated_forward(trainer.model, batch)[:2]  # per-token means

    lp, lens = _native_pair_logps(tok, policy, prompts, chosen, rejected)
    torch.testing.assert_close(lp[:, 0] / lens[:, 0], trl_c, rtol=RTOL, atol=0)
    torch.testing.assert_close(lp[:, 1] / lens[:, 1], trl_r, rtol=RTOL, atol=0)
    out = simpo_loss(
        lp[:, 0], lp[:, 1], lens[:, 0], lens[:, 1], beta=beta, gamma=gamma, label_smoothing=smoothing
    )
    assert float(out.loss) == pytest.approx(trl_loss, rel=RTOL)
    assert abs(trl_loss) > 1e-3


@pytest.mark.integration
@pytest.mark.parametrize("lam", [0.1, 1.0])
def test_orpo_odds_ratio_matches_trl(tmp_path, models, batch_texts, lam):
    """TRL's ORPO loss is ``NLL − λ·mean log σ(log odds)``; its NLL runs over prompt and
    completion (ours, as the paper's L_SFT, over the completion), so the odds-ratio term is
    compared: TRL's loss minus its NLL."""
    from datasets import Dataset
    from trl.experimental.orpo import ORPOConfig, ORPOTrainer

    from prefdelta.train.losses.orpo import orpo_loss

    tok, policy, _ = models
    prompts, chosen, rejected = batch_texts
    args = ORPOConfig(
        output_dir=str(tmp_path),
        per_device_train_batch_size=4,
        beta=lam,
        report_to=[],
        use_cpu=True,
        bf16=False,
    )
    ds = Dataset.from_dict({"prompt": prompts, "chosen": chosen, "rejected": rejected})
    trainer = ORPOTrainer(model=policy, args=args, train_dataset=ds, processing_class=tok)
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(4)])
    with torch.no_grad():
        trl_loss = float(trainer.compute_loss(trainer.model, batch))
        forward = trainer.concatenated_forward(trainer.model, batch)
    trl_c, trl_r, trl_nll = forward[0], forward[1], float(forward[4])

    lp, lens = _native_pair_logps(tok, policy, prompts, chosen, rejected)
    torch.testing.assert_close(lp[:, 0] / lens[:, 0], trl_c, rtol=RTOL, atol=0)
    torch.testing.assert_close(lp[:, 1] / lens[:, 1], trl_r, rtol=RTOL, atol=0)
    out = orpo_loss(lp[:, 0], lp[:, 1], lens[:, 0], lens[:, 1], lam=lam)
    assert float(out.loss) == pytest.approx(trl_loss - trl_nll, rel=RTOL)
    assert float(out.loss) > 1e-3
