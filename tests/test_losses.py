"""Preference losses: values against the papers' formulas, edge cases and gradient signs."""

from __future__ import annotations

import math

import pytest
import torch

from prefdelta.train.losses import dpo_loss, kto_kl_estimate, kto_loss, nll_loss


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
