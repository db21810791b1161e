"""Preference losses: values against the papers' formulas (by hand on small tensors), edge
cases, gradient signs, and the registry that names them."""

from __future__ import annotations

import math

import pytest
import torch
from pydantic import ValidationError

from prefdelta.train.config import TrainHyper
from prefdelta.train.losses import (
    LossInputs,
    dpo_loss,
    get_loss,
    kto_kl_estimate,
    kto_loss,
    loss_names,
    nll_loss,
)
from prefdelta.train.losses.orpo import log1mexp, orpo_loss
from prefdelta.train.losses.simpo import simpo_loss


def _t(*xs: float) -> torch.Tensor:
    return torch.tensor(xs, dtype=torch.float64)


def test_dpo_sigmoid_matches_formula_and_rewards():
    pc, pr, rc, rr = _t(-10.0, -5.0), _t(-12.0, -4.0), _t(-11.0, -5.0), _t(-11.0, -5.0)
    out = dpo_loss(pc, pr, rc, rr, beta=0.2)
    h = (pc - rc) - (pr - rr)  # [2, -1]
    expected = [-math.log(1 / (1 + math.exp(-0.2 * float(x)))) for x in h]
    assert out.losses.tolist() == pytest.approx(expected)
    assert out.chosen_rewards.tolist() == pytest.approx([0.2, 0.0])
    assert out.rejected_rewards.tolist() == pytest.approx([-0.2, 0.2])
    assert float(out.loss) == pytest.approx(sum(expected) / 2)


def test_label_smoothing_half_is_symmetric_and_zero_is_plain_dpo():
    args = (_t(-1.0), _t(-3.0), _t(-2.0), _t(-2.0))
    plain = dpo_loss(*args, beta=0.5)
    assert float(dpo_loss(*args, beta=0.5, label_smoothing=0.0).loss) == pytest.approx(float(plain.loss))
    half = dpo_loss(*args, beta=0.5, label_smoothing=0.5)
    flipped = dpo_loss(_t(-3.0), _t(-1.0), _t(-2.0), _t(-2.0), beta=0.5, label_smoothing=0.5)
    assert float(half.loss) == pytest.approx(float(flipped.loss))
    assert float(half.loss) > float(plain.loss)  # smoothing penalizes a confident margin


def test_ipo_uses_per_token_ratios_and_needs_lengths():
    pc, pr, rc, rr = _t(-10.0), _t(-20.0), _t(-12.0), _t(-18.0)
    out = dpo_loss(
        pc, pr, rc, rr, beta=0.5, loss_type="ipo", chosen_lengths=_t(4.0), rejected_lengths=_t(2.0)
    )
    assert float(out.loss) == pytest.approx((2 / 4 - (-2) / 2 - 1 / (2 * 0.5)) ** 2)
    with pytest.raises(ValueError, match="lengths"):
        dpo_loss(pc, pr, rc, rr, loss_type="ipo")


def test_hinge_is_zero_past_the_margin():
    out = dpo_loss(_t(0.0, 0.0), _t(-30.0, -1.0), _t(0.0, 0.0), _t(0.0, 0.0), beta=0.1, loss_type="hinge")
    assert out.losses.tolist() == pytest.approx([0.0, 0.9])
    with pytest.raises(ValueError, match="loss_type"):
        dpo_loss(_t(0.0), _t(0.0), _t(0.0), _t(0.0), loss_type="nope")  # type: ignore[arg-type]


def test_dpo_gradient_raises_chosen_and_lowers_rejected():
    pc = torch.tensor([-5.0], requires_grad=True)
    pr = torch.tensor([-5.0], requires_grad=True)
    dpo_loss(pc, pr, torch.tensor([-5.0]), torch.tensor([-5.0]), beta=0.1).loss.backward()
    assert pc.grad.item() < 0 < pr.grad.item()


def test_nll_is_per_token_over_the_batch():
    assert float(nll_loss(_t(-6.0, -2.0), _t(3.0, 1.0))) == pytest.approx(2.0)


def test_kto_kl_is_clamped_and_detached():
    pol = torch.tensor([-1.0, -3.0], requires_grad=True)
    kl = kto_kl_estimate(pol, torch.tensor([-2.0, -2.0]))
    assert float(kl) == 0.0 and not kl.requires_grad
    assert float(kto_kl_estimate(_t(-1.0, -2.0), _t(-2.0, -2.0))) == pytest.approx(0.5)


def test_kto_matches_eq7_with_weights():
    pol, ref = _t(-4.0, -6.0, -5.0), _t(-5.0, -5.0, -5.0)
    desirable = torch.tensor([True, False, True])
    kl = torch.tensor(0.3, dtype=torch.float64)
    out = kto_loss(pol, ref, desirable, kl, beta=0.5, desirable_weight=1.5, undesirable_weight=0.7)

    def sig(x: float) -> float:
        return 1 / (1 + math.exp(-x))

    expected = [
        1.5 * (1 - sig(0.5 * (1 - 0.3))),
        0.7 * (1 - sig(0.5 * (0.3 + 1))),
        1.5 * (1 - sig(0.5 * (0 - 0.3))),
    ]
    assert out.losses.tolist() == pytest.approx(expected)
    assert out.chosen_rewards.tolist() == pytest.approx([0.5, 0.0])
    assert out.rejected_rewards.tolist() == pytest.approx([-0.5])


def _sig(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def test_simpo_matches_eq6_on_length_normalised_logps():
    # chosen: -6 over 3 tokens (-2/token), rejected: -10 over 2 tokens (-5/token)
    out = simpo_loss(_t(-6.0, -4.0), _t(-10.0, -1.0), _t(3.0, 4.0), _t(2.0, 1.0), beta=2.0, gamma=1.0)
    # pair 0: 2*(-2 - -5) - 1 = 5; pair 1: 2*(-1 - -1) - 1 = -1
    assert out.losses.tolist() == pytest.approx([-math.log(_sig(5.0)), -math.log(_sig(-1.0))])
    assert out.chosen_rewards.tolist() == pytest.approx([-4.0, -2.0])
    assert out.rejected_rewards.tolist() == pytest.approx([-10.0, -2.0])
    smoothed = simpo_loss(_t(-6.0), _t(-10.0), _t(3.0), _t(2.0), beta=2.0, gamma=1.0, label_smoothing=0.2)
    assert float(smoothed.loss) == pytest.approx(-0.8 * math.log(_sig(5.0)) - 0.2 * math.log(_sig(-5.0)))


def test_simpo_margin_gamma_raises_the_loss_of_a_tie():
    tie = (_t(-4.0), _t(-4.0), _t(2.0), _t(2.0))
    assert float(simpo_loss(*tie, beta=2.5, gamma=0.0).loss) == pytest.approx(math.log(2))
    assert float(simpo_loss(*tie, beta=2.5, gamma=1.25).loss) == pytest.approx(-math.log(_sig(-1.25)))


def test_orpo_odds_ratio_term_by_hand():
    # per-token log-probs: chosen -1 (4 tokens), rejected -2 (2 tokens)
    out = orpo_loss(_t(-4.0), _t(-4.0), _t(4.0), _t(2.0), lam=0.5)
    pc, pr = math.exp(-1.0), math.exp(-2.0)
    log_odds = math.log(pc / (1 - pc)) - math.log(pr / (1 - pr))
    assert float(out.metrics["log_odds"][0]) == pytest.approx(log_odds)
    assert float(out.loss) == pytest.approx(-0.5 * math.log(_sig(log_odds)))
    assert out.chosen_rewards.tolist() == pytest.approx([-0.5])
    assert out.rejected_rewards.tolist() == pytest.approx([-1.0])
    # log(1 - exp(x)) is finite and exact on both sides of -ln 2, even for x near 0
    x = _t(-1e-6, -0.5, -0.9, -40.0)
    assert log1mexp(x).tolist() == pytest.approx([math.log(-math.expm1(v)) for v in x.tolist()], rel=1e-9)


def test_orpo_gradient_raises_chosen_and_lowers_rejected():
    pc = torch.tensor([-6.0], requires_grad=True)
    pr = torch.tensor([-6.0], requires_grad=True)
    orpo_loss(pc, pr, torch.tensor([3.0]), torch.tensor([3.0]), lam=0.2).loss.backward()
    assert pc.grad.item() < 0 < pr.grad.item()


def test_registry_declares_what_each_loss_needs():
    assert set(loss_names()) >= {"dpo", "ipo", "hinge", "kto", "simpo", "orpo"}
    needs = {name: get_loss(name).needs_reference for name in loss_names()}
    assert needs["simpo"] is needs["orpo"] is False
    assert needs["dpo"] and needs["kto"]
    assert get_loss("kto").scores == ("chosen", "rejected", "kl_chosen", "kl_rejected")
    assert get_loss("kto").examples_per_pair == 2 and get_loss("dpo").examples_per_pair == 1
    assert get_loss("orpo").sft_weight == 1.0 and get_loss("simpo").sft_weight == 0.0
    with pytest.raises(ValueError, match="unknown loss 'dop'"):
        get_loss("dop")


def test_registered_classes_compute_their_functions():
    hp = TrainHyper(algorithm="simpo", beta=2.0, simpo_gamma=1.0)
    policy, lengths = torch.tensor([[-6.0, -10.0]]), torch.tensor([[3.0, 2.0]])
    out = get_loss("simpo")(hp)(LossInputs(policy, None, lengths))
    assert float(out.loss) == pytest.approx(-math.log(_sig(5.0)))
    hp = TrainHyper(algorithm="ipo", beta=0.5)
    ref = torch.tensor([[-12.0, -18.0]])
    ipo = get_loss("ipo")(hp)(LossInputs(torch.tensor([[-10.0, -20.0]]), ref, torch.tensor([[4.0, 2.0]])))
    assert float(ipo.loss) == pytest.approx((2 / 4 - (-2) / 2 - 1 / (2 * 0.5)) ** 2)


def test_algorithm_is_validated_against_the_registry():
    from prefdelta.configio import format_validation_error

    with pytest.raises(ValidationError) as err:
        TrainHyper(algorithm="simpoo")
    assert "unknown loss 'simpoo'; expected one of dpo, ipo, hinge, kto" in format_validation_error(
        err.value, "train"
    )
    assert TrainHyper(algorithm="orpo").algorithm == "orpo"
    assert TrainHyper(algorithm="ipo").loss_type == "ipo"  # the former field, read-only
    with pytest.raises(ValidationError, match="batch_size: must be >= 2 for KTO"):
        TrainHyper(algorithm="kto", batch_size=1)


def test_the_train_stage_code_key_covers_every_loss_module():
    """Loss modules are imported by discovery, not by name: an edit to any of them must
    still make the train stage stale (its code key covers its import closure)."""
    from pathlib import Path

    import prefdelta.train.losses as package
    from prefdelta.study.codehash import closure

    folder = Path(package.__file__).parent
    expected = {f"prefdelta.train.losses.{p.stem}" for p in folder.glob("*.py") if p.stem != "__init__"}
    assert {"prefdelta.train.losses.simpo", "prefdelta.train.losses.orpo"} <= expected
    assert expected <= {m for m, _ in closure("prefdelta.train.stage")}
