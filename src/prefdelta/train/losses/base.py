"""The loss interface and its registry (torchtune's shape, our per-example reduction).

A loss is one small class registered by name. It declares what the trainer must compute
for it — whether it needs the reference model (``needs_reference``), which completions it
scores per pair (``scores``: the pair's own, plus KTO's mismatched ones), how many
per-example losses a pair yields — and maps those log-probs to *per-example* losses and
named metrics. The trainer reduces ``sum(losses) / (examples_per_pair · pairs in the
global batch)``, so a batch split into micro-batches or across processes gives the loss
of the whole batch.

Torch is imported inside the functions, not here: a study spec validates
``train.algorithm`` against :func:`loss_names` without loading torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar, Literal

if TYPE_CHECKING:
    import torch

    from prefdelta.train.config import Hyper

Slot = Literal["chosen", "rejected", "kl_chosen", "kl_rejected"]
PAIR: tuple[Slot, ...] = ("chosen", "rejected")


@dataclass(frozen=True)
class LossInputs:
    """Summed completion log-probs of a micro-batch, one column per slot of ``scores``.

    ``policy`` and ``reference`` are ``(B, S)``; ``reference`` is None for a reference-free
    loss. ``lengths`` holds the completion token counts ``(B, S)`` (for length-normalised
    losses). ``kl`` is the batch's reference point for losses that score mismatched slots.
    """

    policy: torch.Tensor
    reference: torch.Tensor | None
    lengths: torch.Tensor
    kl: torch.Tensor | None = None


@dataclass(frozen=True)
class LossOutput:
    """Per-example losses, detached rewards of the chosen and rejected traces, and named
    per-example metrics (summed by the trainer, logged as means per pair)."""

    losses: torch.Tensor
    chosen_rewards: torch.Tensor
    rejected_rewards: torch.Tensor
    metrics: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def loss(self) -> torch.Tensor:
        """The batch mean: what one optimizer step on this batch minimizes."""
        return self.losses.mean()


class PreferenceLoss:
    """One preference objective. Subclasses set the class variables and ``__call__``."""

    name: ClassVar[str]
    needs_reference: ClassVar[bool] = True
    scores: ClassVar[tuple[Slot, ...]] = PAIR
    examples_per_pair: ClassVar[int] = 1
    sft_weight: ClassVar[float] = 0.0  # the chosen NLL the objective itself adds (ORPO: 1)

    def __init__(self, hp: Hyper) -> None:
        self.hp = hp

    @classmethod
    def check(cls, hp: Hyper) -> None:
        """Raise ``ValueError("field: message")`` when ``hp`` cannot run this loss."""

    @property
    def mismatched(self) -> bool:
        """True when the loss scores completions of other pairs (KTO's KL point): the
        trainer then forwards the whole batch before one backward."""
        return any(s.startswith("kl_") for s in self.scores)

    def reference_point(self, diff_sum: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
        """The batch's reference point from the global sum of ``policy − ref`` over the
        ``count`` mismatched completions (losses with ``kl_*`` slots only)."""
        raise NotImplementedError(f"{self.name} scores no mismatched completions")

    def __call__(self, x: LossInputs) -> LossOutput:
        raise NotImplementedError


REGISTRY: dict[str, type[PreferenceLoss]] = {}


def register(cls: type[PreferenceLoss]) -> type[PreferenceLoss]:
    """Class decorator: make ``cls`` selectable as ``train.algorithm: <cls.name>``."""
    if cls.name in REGISTRY:
        raise ValueError(f"loss {cls.name!r} is registered twice ({REGISTRY[cls.name].__module__})")
    REGISTRY[cls.name] = cls
    return cls
