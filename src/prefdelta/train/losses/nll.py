"""The chosen trace's per-token NLL: RPO's term beside any loss, and ORPO's SFT term."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


def nll_loss(policy_chosen: torch.Tensor, chosen_lengths: torch.Tensor) -> torch.Tensor:
    """Per-token negative log-likelihood of the chosen traces: ``−Σ logp / Σ tokens``.

    The RPO term (Pang et al. 2024, arXiv:2404.19733; TRL's ``loss_type=["sigmoid", "sft"]``):
    added with weight ``α`` (``train.nll_weight``, 0.1–1 typical) it keeps the chosen
    trace's likelihood from falling, the likelihood displacement that off-policy DPO
    suffers (Razin et al. 2024, arXiv:2410.08847). Averaged over all chosen tokens of the
    batch, not per sequence; pass the *global* batch's token count when the batch is split.
    """
    return -policy_chosen.sum() / chosen_lengths.sum().clamp(min=1)
