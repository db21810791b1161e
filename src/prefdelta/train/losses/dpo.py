"""DPO and its IPO / hinge variants: pairwise losses on log-ratios to the reference.

Intuition: raise the policy's log-ratio to the reference on the chosen trace relative to
the rejected one; ``beta`` is the strength of the implicit KL constraint.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from prefdelta.train.losses.base import LossInputs, LossOutput, PreferenceLoss, register

if TYPE_CHECKING:
    import torch

DPOLossType = Literal["sigmoid", "ipo", "hinge"]


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
) -> LossOutput:
    """Per-pair DPO / IPO / hinge losses and rewards ``β·(policy − ref)`` per trace.

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
    """
    import torch
    import torch.nn.functional as F

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
    return LossOutput(
        losses=losses,
        chosen_rewards=beta * chosen_ratio.detach(),
        rejected_rewards=beta * rejected_ratio.detach(),
    )


class _Pairwise(PreferenceLoss):
    loss_type: DPOLossType

    def __call__(self, x: LossInputs) -> LossOutput:
        assert x.reference is not None
        return dpo_loss(
            x.policy[:, 0],
            x.policy[:, 1],
            x.reference[:, 0],
            x.reference[:, 1],
            beta=self.hp.beta,
            label_smoothing=self.hp.label_smoothing,
            loss_type=self.loss_type,
            chosen_lengths=x.lengths[:, 0],
            rejected_lengths=x.lengths[:, 1],
        )


@register
class DPO(_Pairwise):
    """DPO (Rafailov et al. 2023, eq. 7), conservative with ``label_smoothing`` > 0;
    β 0.05–0.5 on LLMs, 0.5–2 on tiny off-policy students. With ``nll_weight`` α > 0 it
    is RPO (Pang et al. 2024)."""

    name = "dpo"
    loss_type = "sigmoid"


@register
class IPO(_Pairwise):
    """IPO (Azar et al. 2023, eq. 17) on per-token log-ratios; β is the paper's τ, 0.01–1."""

    name = "ipo"
    loss_type = "ipo"


@register
class Hinge(_Pairwise):
    """SLiC's hinge (Zhao et al. 2023): ``relu(1 − β·h)``; β 0.1–1 (1/β is the margin)."""

    name = "hinge"
    loss_type = "hinge"
