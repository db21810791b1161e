"""SimPO: a reference-free pairwise loss on length-normalised log-probs with a margin."""

from __future__ import annotations

from typing import TYPE_CHECKING

from prefdelta.train.losses.base import LossInputs, LossOutput, PreferenceLoss, register

if TYPE_CHECKING:
    import torch


def simpo_loss(
    policy_chosen: torch.Tensor,
    policy_rejected: torch.Tensor,
    chosen_lengths: torch.Tensor,
    rejected_lengths: torch.Tensor,
    beta: float = 2.0,
    gamma: float = 1.0,
    label_smoothing: float = 0.0,
) -> LossOutput:
    """SimPO, Meng et al. 2024 (arXiv:2405.14734), eq. 6:
    ``−log σ(β/|y_w|·log π(y_w|x) − β/|y_l|·log π(y_l|x) − γ)``.

    The implicit reward is the *average* per-token log-prob scaled by β — the quantity
    generation ranks by — so no reference model is needed, and a length-normalised reward
    does not favour long completions. γ is a target reward margin. With ``label_smoothing``
    ε it is smoothed like conservative DPO (as TRL's CPO trainer does).

    Typical ranges (paper §3, Table 7): β 2–2.5 (up to 10 for some models), γ/β ≈ 0.5
    (γ 0.5–1.6); learning rates lower than DPO's (3e-7–1e-6 on 7-8B models).

    Args:
        policy_chosen, policy_rejected: summed completion log-probs ``(B,)``.
        chosen_lengths, rejected_lengths: completion token counts ``(B,)``.
        beta: reward scale β; gamma: margin γ (absolute, in reward units).
        label_smoothing: ε, 0–0.5.

    Returns:
        per-pair losses; rewards ``β·logp/|y|`` of each trace.
    """
    import torch.nn.functional as F

    chosen = policy_chosen / chosen_lengths.clamp(min=1)
    rejected = policy_rejected / rejected_lengths.clamp(min=1)
    logits = beta * (chosen - rejected) - gamma
    losses = -F.logsigmoid(logits) * (1 - label_smoothing) - F.logsigmoid(-logits) * label_smoothing
    return LossOutput(
        losses=losses, chosen_rewards=beta * chosen.detach(), rejected_rewards=beta * rejected.detach()
    )


@register
class SimPO(PreferenceLoss):
    """SimPO (Meng et al. 2024, eq. 6): reference-free; ``train.beta`` is β (2–2.5),
    ``train.simpo_gamma`` is γ (γ/β ≈ 0.5)."""

    name = "simpo"
    needs_reference = False

    def __call__(self, x: LossInputs) -> LossOutput:
        return simpo_loss(
            x.policy[:, 0],
            x.policy[:, 1],
            x.lengths[:, 0],
            x.lengths[:, 1],
            beta=self.hp.beta,
            gamma=self.hp.simpo_gamma,
            label_smoothing=self.hp.label_smoothing,
        )
