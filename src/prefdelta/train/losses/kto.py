"""KTO: unpaired desirable / undesirable feedback against a KL reference point."""

from __future__ import annotations

from typing import TYPE_CHECKING

from prefdelta.train.losses.base import LossInputs, LossOutput, PreferenceLoss, register

if TYPE_CHECKING:
    import torch

    from prefdelta.train.config import Hyper


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
) -> LossOutput:
    """Kahneman–Tversky Optimization (Ethayarajh et al. 2024, arXiv:2402.01306), eq. 7.

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
    import torch

    ratio = policy_logps - ref_logps
    desirable = desirable.to(torch.bool)
    losses = torch.where(
        desirable,
        desirable_weight * (1 - torch.sigmoid(beta * (ratio - kl))),
        undesirable_weight * (1 - torch.sigmoid(beta * (kl - ratio))),
    )
    rewards = beta * ratio.detach()
    return LossOutput(losses=losses, chosen_rewards=rewards[desirable], rejected_rewards=rewards[~desirable])


@register
class KTO(PreferenceLoss):
    """KTO on pairs (Ethayarajh et al. 2024, eq. 7): each pair gives a desirable example
    (prompt, chosen) and an undesirable one (prompt, rejected). Intuition: no pairing is
    needed — a desirable completion is pushed above the reference point ``z₀`` (the
    policy's KL to the reference), an undesirable one below it, through a saturating
    value function, so easy examples stop contributing. The KL point uses, for pair ``j``
    of a global batch, both completions of pair ``j−1`` (mismatched, as in the paper and
    TRL's rotation): the ``kl_*`` slots. β 0.05–0.5; λ_D, λ_U ~1."""

    name = "kto"
    scores = ("chosen", "rejected", "kl_chosen", "kl_rejected")
    examples_per_pair = 2

    @classmethod
    def check(cls, hp: Hyper) -> None:
        if hp.batch_size < 2:
            raise ValueError(
                "batch_size: must be >= 2 for KTO (its KL reference point uses the other pairs of the batch)"
            )

    def reference_point(self, diff_sum: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
        """``z₀`` from the global sum of ``policy − ref`` over the mismatched completions."""
        import torch

        return kto_kl_estimate(diff_sum / count, torch.zeros(1))

    def __call__(self, x: LossInputs) -> LossOutput:
        import torch

        assert x.reference is not None and x.kl is not None
        n = len(x.policy)
        desirable = torch.cat([torch.ones(n, dtype=torch.bool), torch.zeros(n, dtype=torch.bool)])
        policy = torch.cat([x.policy[:, 0], x.policy[:, 1]])
        return kto_loss(
            policy,
            torch.cat([x.reference[:, 0], x.reference[:, 1]]),
            desirable.to(policy.device),
            x.kl.to(policy.device),
            beta=self.hp.beta,
            desirable_weight=self.hp.desirable_weight,
            undesirable_weight=self.hp.undesirable_weight,
        )
