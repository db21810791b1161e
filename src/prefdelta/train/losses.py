"""Preference losses as pure tensor functions (the torchtune habit: no trainer state).

Inputs are per-sequence log-probabilities summed over completion tokens, shape ``(B,)``.
Every function returns *per-example* losses (not their mean) so that a trainer can split a
batch into micro-batches, or across processes, and still reduce with the global count:
``sum(per_example) / N`` over the whole batch equals the loss TRL computes on that batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

DPOLossType = Literal["sigmoid", "ipo", "hinge"]


@dataclass(frozen=True)
class PreferenceLossOutput:
    """Per-example losses ``(B,)`` and detached per-example rewards ``(B,)``.

    ``loss`` is the batch mean (what one optimizer step on this batch minimizes).
    """

    losses: torch.Tensor
    chosen_rewards: torch.Tensor
    rejected_rewards: torch.Tensor

    @property
    def loss(self) -> torch.Tensor:
        return self.losses.mean()


def dpo_loss(
    policy_chosen: torch.Tensor,
    policy_rejected: torch.Tensor,
    ref_chosen: torch.Tensor,
    ref_rejected: torch.Tensor,
    beta: float = 0.1,
    label_smoothing: float = 0.0,
    loss_type: DPOLossType = "sigmoid",
    chosen_lengths: torch.Tensor | None = None,
    rejected_lengths: torch.Tensor | None = None,
) -> PreferenceLossOutput:
    """Direct Preference Optimization and its IPO / hinge variants.

    Intuition: raise the policy's log-ratio to the reference on the chosen trace relative
    to the rejected one; ``beta`` is the strength of the implicit KL constraint.

    - ``sigmoid``: DPO, Rafailov et al. 2023 (arXiv:2305.18290), eq. 7:
      ``-log σ(β·h)`` with ``h = (π_c − ref_c) − (π_r − ref_r)``. With ``label_smoothing``
      ε > 0 it is the conservative DPO of Mitchell (2023): ``−(1−ε)·log σ(βh) − ε·log σ(−βh)``,
      ε the assumed probability that a label is flipped.
    - ``ipo``: Azar et al. 2023 (arXiv:2310.12036), eq. 17: ``(h' − 1/(2β))²`` where, as in
      TRL (and confirmed by the IPO authors), ``h'`` uses log-ratios *averaged per
      completion token*, so ``chosen_lengths`` / ``rejected_lengths`` are required.
      ``beta`` is the paper's τ.
    - ``hinge``: SLiC, Zhao et al. 2023 (arXiv:2305.10425): ``relu(1 − β·h)``.

    Args:
        policy_chosen, policy_rejected, ref_chosen, ref_rejected: summed completion
            log-probs, shape ``(B,)``.
        beta: 0.05–0.5 typical for sigmoid (the reference study used 0.2); larger keeps
            the policy closer to the reference. IPO: 0.01–1.
        label_smoothing: 0–0.5 (0 is plain DPO; 0.1–0.2 when labels are noisy).
        loss_type: ``sigmoid`` | ``ipo`` | ``hinge``.
        chosen_lengths, rejected_lengths: completion token counts ``(B,)`` (IPO only).

    Returns:
        per-pair losses and rewards ``β·(policy − ref)`` per trace.
    """
    chosen_ratio = policy_chosen - ref_chosen
    rejected_ratio = policy_rejected - ref_rejected
    logits = chosen_ratio - rejected_ratio
    if loss_type == "sigmoid":
        losses = (
            -F.logsigmoid(beta * logits) * (1 - label_smoothing)
            - F.logsigmoid(-beta * logits) * label_smoothing
        )
    elif loss_type == "ipo":
        if chosen_lengths is None or rejected_lengths is None:
            raise ValueError("the ipo loss needs chosen_lengths and rejected_lengths")
        per_token = chosen_ratio / chosen_lengths.clamp(min=1) - rejected_ratio / rejected_lengths.clamp(
            min=1
        )
        losses = (per_token - 1 / (2 * beta)) ** 2
    elif loss_type == "hinge":
        losses = torch.relu(1 - beta * logits)
    else:
        raise ValueError(f"unknown DPO loss_type {loss_type!r}; expected sigmoid, ipo or hinge")
    return PreferenceLossOutput(
        losses=losses,
        chosen_rewards=beta * chosen_ratio.detach(),
        rejected_rewards=beta * rejected_ratio.detach(),
    )


def nll_loss(policy_chosen: torch.Tensor, chosen_lengths: torch.Tensor) -> torch.Tensor:
    """Per-token negative log-likelihood of the chosen traces: ``−Σ logp / Σ tokens``.

    The RPO term (Pang et al. 2024, arXiv:2404.19733; TRL's ``loss_type=["sigmoid", "sft"]``):
    added with weight ``α`` (0.1–1 typical) it keeps the chosen trace's likelihood from
    falling, the likelihood displacement that off-policy DPO suffers (Razin et al. 2024,
    arXiv:2410.08847). Averaged over all chosen tokens of the batch, not per sequence.
    """
    return -policy_chosen.sum() / chosen_lengths.sum().clamp(min=1)


def kto_kl_estimate(policy_kl: torch.Tensor, ref_kl: torch.Tensor) -> torch.Tensor:
    """KTO's reference point ``z₀``: a batch estimate of KL(π‖ref), clamped at 0, no gradient.

    Ethayarajh et al. 2024 (arXiv:2402.01306), §4.1: estimated on *mismatched*
    prompt–completion pairs ``(x_i, y_j), j ≠ i`` of the same batch, so that it measures
    how far the policy moved in general, not on the examples being rewarded. Gradients
    are not passed through it (the paper and TRL both detach it).

    Args:
        policy_kl, ref_kl: summed log-probs of the mismatched completions, ``(M,)``.
    """
    return (policy_kl - ref_kl).mean().detach().clamp(min=0)


def kto_loss(
    policy_logps: torch.Tensor,
    ref_logps: torch.Tensor,
    desirable: torch.Tensor,
    kl: torch.Tensor,
    beta: float = 0.1,
    desirable_weight: float = 1.0,
    undesirable_weight: float = 1.0,
) -> PreferenceLossOutput:
    """Kahneman–Tversky Optimization (Ethayarajh et al. 2024, arXiv:2402.01306), eq. 7.

    Intuition: unpaired feedback. A desirable completion is pushed above the reference
    point ``z₀`` (the policy's KL to the reference), an undesirable one below it, each
    through a saturating sigmoid value function — so no pairing is needed and easy
    examples stop contributing.

    ``loss_i = λ_D (1 − σ(β(r_i − z₀)))`` if desirable, ``λ_U (1 − σ(β(z₀ − r_i)))`` if not,
    with ``r_i = π_i − ref_i``.

    Args:
        policy_logps, ref_logps: summed completion log-probs ``(B,)``.
        desirable: bool ``(B,)``, True for a desirable (chosen) completion.
        kl: the reference point from :func:`kto_kl_estimate` (scalar, detached).
        beta: 0.05–0.5 (TRL default 0.1).
        desirable_weight, undesirable_weight: λ_D and λ_U, ~1; the paper keeps
            ``λ_D·n_D / (λ_U·n_U)`` in [1, 4/3] when classes are imbalanced.

    Returns:
        per-example losses in the input order; ``chosen_rewards`` are the rewards of the
        desirable examples and ``rejected_rewards`` those of the undesirable ones.
    """
    ratio = policy_logps - ref_logps
    desirable = desirable.to(torch.bool)
    losses = torch.where(
        desirable,
        desirable_weight * (1 - torch.sigmoid(beta * (ratio - kl))),
        undesirable_weight * (1 - torch.sigmoid(beta * (kl - ratio))),
    )
    rewards = beta * ratio.detach()
    return PreferenceLossOutput(
        losses=losses, chosen_rewards=rewards[desirable], rejected_rewards=rewards[~desirable]
    )
