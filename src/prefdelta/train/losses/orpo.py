"""ORPO: reference-free; an odds-ratio preference term added to SFT on the chosen trace."""

from __future__ import annotations

from typing import TYPE_CHECKING

from prefdelta.train.losses.base import LossInputs, LossOutput, PreferenceLoss, register

if TYPE_CHECKING:
    import torch


def log1mexp(x: torch.Tensor) -> torch.Tensor:
    """``log(1 − exp(x))`` for ``x < 0``, stable on both sides of ``−ln 2`` (Mächler 2012)."""
    import torch

    return torch.where(x < -0.6931471805599453, torch.log1p(-torch.exp(x)), torch.log(-torch.expm1(x)))


def orpo_loss(
    policy_chosen: torch.Tensor,
    policy_rejected: torch.Tensor,
    chosen_lengths: torch.Tensor,
    rejected_lengths: torch.Tensor,
    lam: float = 0.1,
) -> LossOutput:
    """ORPO's odds-ratio term, Hong et al. 2024 (arXiv:2403.07691), eqs. 4–7:
    ``L_OR = −log σ(log odds(y_w|x) − log odds(y_l|x))``, ``odds(y|x) = P/(1−P)`` with
    ``P = exp(mean per-token log π(y|x))``; the per-pair loss returned is ``λ·L_OR``.

    The full objective is ``L_SFT + λ·L_OR`` (eq. 6): the SFT term (the chosen trace's
    per-token NLL, :func:`.nll.nll_loss`) is added by the trainer because it is reduced
    over the batch's tokens, not per pair. No reference model: the SFT term adapts the
    model to the domain while the odds ratio penalises the rejected style.

    Typical ranges: λ 0.1–1 (paper: 0.1 for Mistral/Llama-2 7B, 0.2–0.25 elsewhere);
    learning rates as for SFT (5e-6–8e-6 on 7B models).

    Args:
        policy_chosen, policy_rejected: summed completion log-probs ``(B,)``.
        chosen_lengths, rejected_lengths: completion token counts ``(B,)``.
        lam: λ, the weight of the odds-ratio term (``train.beta``, TRL's name for it).

    Returns:
        per-pair ``λ·L_OR``; rewards ``λ·logp/|y|``; metric ``log_odds`` per pair.
    """
    import torch.nn.functional as F

    chosen = policy_chosen / chosen_lengths.clamp(min=1)
    rejected = policy_rejected / rejected_lengths.clamp(min=1)
    log_odds = (chosen - rejected) - (log1mexp(chosen) - log1mexp(rejected))
    return LossOutput(
        losses=-lam * F.logsigmoid(log_odds),
        chosen_rewards=lam * chosen.detach(),
        rejected_rewards=lam * rejected.detach(),
        metrics={"log_odds": log_odds.detach()},
    )


@register
class ORPO(PreferenceLoss):
    """ORPO (Hong et al. 2024, eq. 6): ``NLL(chosen) + λ·L_OR``, reference-free;
    ``train.beta`` is λ (0.1–1); ``train.nll_weight`` adds to the SFT weight of 1."""

    name = "orpo"
    needs_reference = False
    sft_weight = 1.0

    def __call__(self, x: LossInputs) -> LossOutput:
        return orpo_loss(x.policy[:, 0], x.policy[:, 1], x.lengths[:, 0], x.lengths[:, 1], lam=self.hp.beta)
