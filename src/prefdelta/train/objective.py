"""One process's share of a global batch: forwards, the registered loss, backward.

Each loss is reduced with the *global* count (``examples_per_pair`` × pairs of the global
batch; the NLL term with the global batch's chosen tokens), so split across micro-batches
and processes the gradient is that of the whole batch (DDP averages over processes, hence
the ``× world`` on each process's loss). A loss that scores mismatched completions (KTO)
needs the global KL point first: all of the process's forwards run, the point is
all-reduced, then one backward; any other loss backs each micro-batch as it goes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import torch

from prefdelta.train.batching import micro_batches, shard
from prefdelta.train.config import TrainHyper
from prefdelta.train.logprobs import EncodedPair, prefix_shared_logprobs
from prefdelta.train.losses import LossInputs, PreferenceLoss, nll_loss
from prefdelta.train.metrics import StepSums
from prefdelta.train.refcache import RefCache
from prefdelta.train.reference import previous_in_batch, slot_completions


class BatchObjective:
    """Computes and backs the loss of one process's share of a global batch."""

    def __init__(
        self,
        accelerator,
        model,
        loss: PreferenceLoss,
        pairs: Sequence[EncodedPair],
        cache: RefCache | None,
        hp: TrainHyper,
        pad: int,
    ) -> None:
        self.accelerator, self.model, self.loss, self.pairs = accelerator, model, loss, pairs
        self.cache, self.hp, self.pad = cache, hp, pad
        self.world = accelerator.num_processes
        self.own = sum(1 for s in loss.scores if not s.startswith("kl_"))  # kl_* slots come last
        self.nll_weight = hp.nll_weight + loss.sft_weight

    def __call__(self, batch: list[int], weight: float, sync: bool) -> StepSums:
        """Backward of this process's share of ``batch`` (its loss × ``weight``); its sums."""
        mine = shard(batch, self.accelerator.process_index, self.world)
        span = len(self.loss.scores)
        lengths = [
            len(self.pairs[i].prompt) + span * max(len(self.pairs[i].chosen), len(self.pairs[i].rejected))
            for i in mine
        ]
        groups = [[mine[k] for k in g] for g in micro_batches(lengths, self.hp.max_tokens_per_forward)]
        if self.loss.mismatched:
            return self._whole(batch, groups, weight, sync)
        sums = StepSums()
        for g, idx in enumerate(groups):
            policy, reference, lens = self._forward(batch, idx)
            out = self.loss(LossInputs(policy, reference, lens))
            total, nll = self._total(out.losses, policy, batch)
            self._backward(total, weight, sync and g == len(groups) - 1)
            sums += StepSums.of(total, nll, out, policy)
        if not groups:  # more processes than pairs: still join the gradient all-reduce
            self._backward(self._zero(), weight, sync)
        return sums

    def _whole(self, batch: list[int], groups: list[list[int]], weight: float, sync: bool) -> StepSums:
        """Forward every group, all-reduce the KL point, then one backward (KTO)."""
        k = self.own
        policies, references, lengths, kl_sum = [], [], [], torch.zeros(2)
        for idx in groups:
            policy, reference, lens = self._forward(batch, idx)
            assert reference is not None
            kl_sum += torch.tensor([float((policy[:, k:] - reference[:, k:]).detach().sum()), 2.0 * len(idx)])
            policies.append(policy[:, :k])
            references.append(reference[:, :k])
            lengths.append(lens[:, :k])
        if self.world > 1:
            kl_sum = self.accelerator.reduce(kl_sum.to(self.accelerator.device), reduction="sum").cpu()
        kl = self.loss.reference_point(kl_sum[0:1], kl_sum[1])
        if not policies:
            self._backward(self._zero(), weight, sync)
            return StepSums(kl=float(kl))
        policy = torch.cat(policies)
        out = self.loss(LossInputs(policy, torch.cat(references), torch.cat(lengths), kl))
        total, nll = self._total(out.losses, policy, batch)
        self._backward(total, weight, sync)
        sums = StepSums.of(total, nll, out, policy)
        sums.kl = float(kl)
        return sums

    def _forward(self, batch: list[int], idx: list[int]):
        """Policy (and reference) log-probs ``(B, S)`` of the loss's slots, and their lengths."""
        ps = [self.pairs[i] for i in idx]
        conts = [slot_completions(self.pairs, self.loss, i, previous_in_batch(batch, i)) for i in idx]
        frozen = tuple(range(self.own, len(self.loss.scores)))
        policy = prefix_shared_logprobs(
            self.model, [p.prompt for p in ps], conts, self.pad, no_grad_slots=frozen
        )
        lens = torch.tensor([[len(c) for c in cs] for cs in conts], dtype=torch.float32, device=policy.device)
        if self.cache is None:
            return policy, None, lens
        reference = torch.stack(
            [
                self.cache.get([(p.prompt, c[s]) for p, c in zip(ps, conts, strict=True)])
                for s in range(len(self.loss.scores))
            ],
            1,
        ).to(policy.device)
        return policy, reference, lens

    def _total(self, losses: torch.Tensor, policy: torch.Tensor, batch: list[int]):
        """The share's objective with the global reduction, and its chosen NLL."""
        total = losses.sum() / (self.loss.examples_per_pair * len(batch))
        chosen_tokens = sum(len(self.pairs[i].chosen) for i in batch)
        nll = nll_loss(policy[:, 0], torch.tensor(float(chosen_tokens)))
        if self.nll_weight > 0:
            total = total + self.nll_weight * nll
        return total, nll

    def _zero(self) -> torch.Tensor:
        return sum(p.sum() for p in self.model.parameters() if p.requires_grad) * 0.0

    def _backward(self, loss: torch.Tensor, weight: float, sync: bool) -> None:
        with contextlib.nullcontext() if sync else self.accelerator.no_sync(self.model):
            self.accelerator.backward(loss * self.world * weight)
