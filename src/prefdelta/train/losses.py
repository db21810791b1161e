"""Preference losses as pure tensor functions (the torchtune habit: no trainer state).

Inputs are per-sequence log-probabilities summed over completion tokens, shape ``(B,)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class PreferenceLossOutput:
    """Loss (scalar) and per-pair diagnostics, shape ``(B,)``."""

    loss: torch.Tensor
    chosen_rewards: torch.Tensor
    rejected_rewards: torch.Tensor


def dpo_loss(
    policy_chosen: torch.Tensor,
    policy_rejected: torch.Tensor,
    ref_chosen: torch.Tensor,
    ref_rejected: torch.Tensor,
    beta: float = 0.1,
    label_smoothing: float = 0.0,
) -> PreferenceLossOutput:
    """Direct Preference Optimization, sigmoid loss (Rafailov et al., 2023, arXiv:2305.18290).

    Intuition: raise the policy's log-ratio to the reference on the chosen trace relative
    to the rejected one; ``beta`` is the strength of the implicit KL constraint.

    Args:
        policy_chosen, policy_rejected, ref_chosen, ref_rejected: summed completion
            log-probs, shape ``(B,)``.
        beta: 0.05–0.5 typical (the reference study used 0.2). Larger keeps the policy
            closer to the reference.
        label_smoothing: 0–0.5, the conservative DPO of Mitchell (2023): the assumed
            probability that a preference label is flipped. 0 is plain DPO.

    Returns:
        loss averaged over the batch, and rewards ``beta * (policy - ref)`` per trace.
    """
    logits = (policy_chosen - ref_chosen) - (policy_rejected - ref_rejected)
    losses = (
        -F.logsigmoid(beta * logits) * (1 - label_smoothing) - F.logsigmoid(-beta * logits) * label_smoothing
    )
    return PreferenceLossOutput(
        loss=losses.mean(),
        chosen_rewards=beta * (policy_chosen - ref_chosen).detach(),
        rejected_rewards=beta * (policy_rejected - ref_rejected).detach(),
    )


def nll_loss(policy_chosen: torch.Tensor, chosen_lengths: torch.Tensor) -> torch.Tensor:
    """Per-token negative log-likelihood of the chosen traces (the RPO term,
    Pang et al., 2024, arXiv:2404.19733): ``-sum(logp) / sum(tokens)``."""
    return -policy_chosen.sum() / chosen_lengths.sum().clamp(min=1)
