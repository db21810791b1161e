"""Per-step training metrics: a named structure, summed over micro-batches, batches and
processes, logged to ``<run>/metrics.jsonl`` (the curve the report plots), the trackers
of ``train.report_to`` and the caller's ``on_step``.

``metrics.jsonl`` has one JSON object per optimizer step: ``step``, ``epoch``, ``loss``
(the objective, NLL term included), ``lr``, ``grad_norm``, ``rewards_chosen``,
``rewards_rejected``, ``margin`` (their difference), ``preference_accuracy`` (share of
pairs with a positive margin), ``logp_chosen`` / ``logp_rejected`` (mean summed
completion log-probs under the policy), ``nll_chosen`` (per-token NLL of the chosen
traces), ``kl`` (KTO's reference point) and a loss's own metrics (ORPO: ``log_odds``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path

import torch

from prefdelta.train.config import TrainHyper
from prefdelta.train.losses import LossOutput

StepCallback = Callable[[int, int, dict[str, float]], None]


@dataclass
class StepSums:
    """Sums over the pairs of one optimizer step (per process until :meth:`all_reduce`)."""

    loss: float = 0.0
    nll: float = 0.0
    rewards_chosen: float = 0.0
    rewards_rejected: float = 0.0
    margin: float = 0.0
    correct: float = 0.0
    logp_chosen: float = 0.0
    logp_rejected: float = 0.0
    pairs: float = 0.0
    kl: float = 0.0  # already global: averaged over the step's batches, never all-reduced
    extras: dict[str, float] = field(default_factory=dict)

    @classmethod
    def of(cls, loss: torch.Tensor, nll: torch.Tensor, out: LossOutput, policy: torch.Tensor) -> StepSums:
        """The sums of one forward: ``policy`` holds the chosen and rejected log-probs ``(B, 2+)``."""
        margin = out.chosen_rewards - out.rejected_rewards
        return cls(
            loss=float(loss.detach()),
            nll=float(nll.detach()),
            rewards_chosen=float(out.chosen_rewards.sum()),
            rewards_rejected=float(out.rejected_rewards.sum()),
            margin=float(margin.sum()),
            correct=float((margin > 0).float().sum()),
            logp_chosen=float(policy[:, 0].detach().sum()),
            logp_rejected=float(policy[:, 1].detach().sum()),
            pairs=float(len(policy)),
            extras={k: float(v.sum()) for k, v in out.metrics.items()},
        )

    def __iadd__(self, other: StepSums) -> StepSums:
        for f in fields(self):
            if f.name != "extras":
                setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))
        for k, v in other.extras.items():
            self.extras[k] = self.extras.get(k, 0.0) + v
        return self

    def all_reduce(self, accelerator) -> StepSums:
        """The sums over every process (``kl`` is already global and kept as is)."""
        if accelerator.num_processes == 1:
            return self
        names = [f.name for f in fields(self) if f.name not in ("extras", "kl")]
        keys = sorted(self.extras)
        values = torch.tensor(
            [getattr(self, n) for n in names] + [self.extras[k] for k in keys], dtype=torch.float64
        )
        total = accelerator.reduce(values.to(accelerator.device), reduction="sum").cpu().tolist()
        out = StepSums(**dict(zip(names, total[: len(names)], strict=True)), kl=self.kl)
        out.extras = dict(zip(keys, total[len(names) :], strict=True))
        return out

    def means(self, n_batches: int, with_kl: bool) -> dict[str, float]:
        """What a step logs: losses averaged over its batches, the rest per pair."""
        count = max(self.pairs, 1.0)
        out = {
            "loss": self.loss / n_batches,
            "rewards_chosen": self.rewards_chosen / count,
            "rewards_rejected": self.rewards_rejected / count,
            "margin": self.margin / count,
            "preference_accuracy": self.correct / count,
            "logp_chosen": self.logp_chosen / count,
            "logp_rejected": self.logp_rejected / count,
            "nll_chosen": self.nll / n_batches,
        }
        if with_kl:
            out["kl"] = self.kl
        return out | {k: v / count for k, v in self.extras.items()}


class MetricsLog:
    """Where a step's metrics go, on the main process: ``metrics.jsonl`` (cut back to the
    checkpoint's step on resume), the accelerate trackers, and ``on_step``."""

    def __init__(
        self, accelerator, out_dir: Path, hp: TrainHyper, resume_step: int, on_step: StepCallback | None
    ) -> None:
        self.accelerator = accelerator
        self.main = accelerator.is_main_process
        self.on_step = on_step
        self.path = out_dir / "metrics.jsonl"
        self.file = None
        if not self.main:
            return
        kept = []
        if resume_step and self.path.exists():
            kept = [ln for ln in self.path.read_text().splitlines() if json.loads(ln)["step"] <= resume_step]
        self.path.write_text("".join(ln + "\n" for ln in kept))
        self.file = open(self.path, "a")  # noqa: SIM115 (closed by close())
        if hp.report_to:
            from prefdelta.train.tracking import start_trackers

            start_trackers(accelerator, out_dir, hp)

    def write(self, step: int, total: int, metrics: dict[str, float]) -> None:
        if self.file is None:
            return
        self.file.write(json.dumps(metrics) + "\n")
        self.file.flush()
        if self.accelerator.trackers:
            self.accelerator.log({f"train/{k}": v for k, v in metrics.items() if k != "step"}, step=step)
        if self.on_step is not None:
            self.on_step(step, total, metrics)

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None
        if self.main and self.accelerator.trackers:
            from prefdelta.train.tracking import finish_trackers

            finish_trackers(self.accelerator)
