"""Dynamic delta selection and the pair-update budget.

A static selection decides once, before training, which pairs are worth it. The reference
study's stated next step is to re-decide as training goes: a pair the policy already
separates teaches little more, a high-delta pair it still gets wrong teaches most. Every
*round* (``train.dynamic.every_epochs`` passes) the trainer re-ranks the run's pool by

    score_i = delta_i · (1 − σ(m_i))^w

where ``delta_i`` is the judged delta of ``train.dynamic.key``, ``m_i`` the policy's
current implicit reward margin on the pair (the loss's own ``chosen_rewards −
rejected_rewards``: ``β·[(log π(c) − log π_ref(c)) − (log π(r) − log π_ref(r))]`` for DPO,
IPO, hinge and KTO; the length-normalised ``β·(log π(c)/|c| − log π(r)/|r|)`` for the
reference-free SimPO and ORPO) and ``w`` is ``margin_weight``. ``1 − σ(m) = σ(−m)`` is
exactly the weight DPO's gradient gives a pair (Rafailov et al. 2023, §4, "What does the
DPO update do?"): the score is the delta weighted by how much the loss still wants to move
on that pair. At the first round the policy is the reference, ``m = 0`` for every
reference-based loss, so round one is the static top fraction by delta; ``w = 0`` keeps it
static throughout.

The budget: a run's *pair-updates* are the pairs of all its batches (pairs trained per
epoch × epochs). ``train.pair_updates`` fixes it, so that selections of different sizes —
and a dynamic run — are compared at equal cost (:func:`budget_batches`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from prefdelta.select.strategies import size_of
from prefdelta.train.batching import micro_batches, plan_batches, shard
from prefdelta.train.config import TrainHyper
from prefdelta.train.logprobs import EncodedPair, prefix_shared_logprobs
from prefdelta.train.losses import LossInputs, PreferenceLoss
from prefdelta.train.refcache import RefCache
from prefdelta.train.reference import reference_items


# ---- pure functions ----------------------------------------------------------------------------------
def round_scores(deltas: torch.Tensor, margins: torch.Tensor, margin_weight: float = 1.0) -> torch.Tensor:
    """``delta · σ(−margin)^margin_weight`` per pair: the judged delta weighted by the
    policy's remaining error on the pair (DPO's per-pair gradient weight)."""
    return deltas * torch.sigmoid(-margins).pow(margin_weight)


def top_indices(scores: torch.Tensor, k: int) -> list[int]:
    """The ``k`` highest scores' positions, ties broken by position ascending (exact and
    independent of the sort's stability); returned in position order."""
    order = sorted(range(len(scores)), key=lambda i: (-float(scores[i]), i))
    return sorted(order[:k])


def cut_to_budget(batches: list[list[int]], budget: int | None) -> list[list[int]]:
    """The first ``budget`` pairs of ``batches`` (the last batch kept partial); all of
    them when ``budget`` is None."""
    if budget is None:
        return batches
    out, left = [], budget
    for b in batches:
        if left <= 0:
            break
        out.append(b[:left])
        left -= len(out[-1])
    return out


def budget_batches(n: int, hp: TrainHyper) -> list[list[int]]:
    """A static run's batches: ``hp.epochs`` seeded passes over ``n`` pairs, or with
    ``hp.pair_updates`` as many passes as the budget needs, cut at the budget."""
    if hp.pair_updates is None:
        return plan_batches(n, hp.batch_size, hp.epochs, hp.seed)
    return cut_to_budget(
        plan_batches(n, hp.batch_size, math.ceil(hp.pair_updates / n), hp.seed), hp.pair_updates
    )


def round_budgets(n_pool: int, hp: TrainHyper) -> list[int]:
    """Pair-updates of each round of a dynamic run: ``every_epochs`` passes over its
    ``ceil(fraction · pool)`` pairs, until ``hp.pair_updates`` (default: that set × epochs)."""
    dyn = hp.dynamic
    assert dyn is not None
    k = size_of(n_pool, dyn.fraction)
    total = hp.pair_updates if hp.pair_updates is not None else k * hp.epochs
    per_round = k * dyn.every_epochs
    return [min(per_round, total - start) for start in range(0, total, per_round)]


def round_seed(seed: int, r: int) -> int:
    """The batch-order seed of round ``r`` of a run seeded ``seed``; round 0 uses the run's
    own seed, so a dynamic run that never re-ranks trains exactly like the static run on
    the same top pairs (tested)."""
    return seed + r * 1_000_003


# ---- the policy's margins -----------------------------------------------------------------------------
@torch.no_grad()
def pool_margins(
    accelerator,
    model,
    loss: PreferenceLoss,
    pairs: Sequence[EncodedPair],
    cache: RefCache | None,
    pad: int,
    max_tokens: int | None,
) -> torch.Tensor:
    """The implicit reward margin ``chosen_rewards − rejected_rewards`` of the loss on every
    pair, under the current policy, without gradients. Each process scores a contiguous
    share and the shares are summed, so every process gets the same vector."""
    n = len(pairs)
    mine = shard(list(range(n)), accelerator.process_index, accelerator.num_processes)
    out = torch.zeros(n, dtype=torch.float64)
    was_training = model.training
    model.eval()
    lengths = [len(pairs[i].prompt) + 2 * max(len(pairs[i].chosen), len(pairs[i].rejected)) for i in mine]
    for group in micro_batches(lengths, max_tokens):
        idx = [mine[g] for g in group]
        ps = [pairs[i] for i in idx]
        policy = prefix_shared_logprobs(
            model, [p.prompt for p in ps], [[p.chosen, p.rejected] for p in ps], pad
        )
        policy = policy.float().cpu()
        reference = None
        if cache is not None:
            reference = torch.stack(
                [
                    cache.get([(p.prompt, p.chosen) for p in ps]),
                    cache.get([(p.prompt, p.rejected) for p in ps]),
                ],
                1,
            )
        lens = torch.tensor([[len(p.chosen), len(p.rejected)] for p in ps], dtype=torch.float32)
        res = loss(LossInputs(policy, reference, lens, kl=torch.zeros(())))
        out[idx] = (res.chosen_rewards - res.rejected_rewards).double()
    model.train(was_training)
    if accelerator.num_processes > 1:
        out = accelerator.reduce(out.to(accelerator.device), reduction="sum").cpu()
    return out.float()


def extend_reference(
    accelerator, cache: RefCache, loss: PreferenceLoss, pairs: Sequence[EncodedPair],
    batches: Sequence[Sequence[int]], model_path: Path, pad: int, max_tokens: int | None,
) -> None:  # fmt: skip
    """Add to ``cache`` the reference log-probs a round's batches need that it lacks: KTO
    scores each pair against the previous pair of its batch, and a dynamic round makes
    batches no static plan had. Computed on the main process, reloaded by the others."""
    items = reference_items(pairs, batches, loss)
    if not cache.missing(items):
        return
    if accelerator.is_main_process:
        from transformers import AutoModelForCausalLM

        ref = AutoModelForCausalLM.from_pretrained(str(model_path), dtype=torch.float32)
        cache.compute(ref.to(accelerator.device), items, pad, max_tokens)
        del ref
    accelerator.wait_for_everyone()
    if not accelerator.is_main_process:
        cache.reload()


# ---- the rounds of one run ----------------------------------------------------------------------------
@dataclass
class Round:
    """One decided round: its pairs (indices into the pool), batches and what it logs."""

    index: int
    chosen: list[int]
    batches: list[list[int]]
    stats: dict[str, float]


class DynamicRounds:
    """Decides a dynamic run's rounds one at a time, each from the policy as it is then,
    and records them in ``<run>/rounds.jsonl`` (one line per round: the pool indices
    trained on, their mean delta and margin, the pool's mean margin)."""

    def __init__(
        self, pairs: Sequence[EncodedPair], deltas: Sequence[float], hp: TrainHyper, out_dir: Path, main: bool
    ) -> None:
        assert hp.dynamic is not None
        if len(deltas) != len(pairs):
            raise ValueError(
                f"dynamic selection needs one delta per pair: {len(deltas)} deltas, {len(pairs)} pairs"
            )
        deltas_t = torch.tensor([float(d) for d in deltas], dtype=torch.float32)
        if not torch.isfinite(deltas_t).all():
            raise ValueError("dynamic selection: every pair of the pool needs a finite delta")
        self.pairs, self.deltas, self.hp, self.cfg = pairs, deltas_t, hp, hp.dynamic
        self.k = size_of(len(pairs), self.cfg.fraction)
        self.budgets = round_budgets(len(pairs), hp)
        self.done = 0
        self.path = out_dir / "rounds.jsonl"
        self.main = main
        if main:
            self.path.write_text("")

    @property
    def total_batches(self) -> int:
        """Batches of the whole run (their count does not depend on which pairs a round picks)."""
        shape = plan_batches(self.k, self.hp.batch_size, self.cfg.every_epochs, 0)
        return sum(len(cut_to_budget(shape, b)) for b in self.budgets)

    @property
    def pair_updates(self) -> int:
        return sum(self.budgets)

    def remaining(self) -> bool:
        return self.done < len(self.budgets)

    def decide(
        self,
        accelerator,
        model,
        loss: PreferenceLoss,
        cache: RefCache | None,
        step: int,
        model_path: Path,
        pad: int,
    ) -> Round:
        """The next round from the policy ``model`` as it is before ``step``: the pool's
        margins without gradients, then :meth:`next`; KTO's cache gets the round's
        mismatched pairs."""
        max_tokens = self.hp.max_tokens_per_forward
        margins = pool_margins(accelerator, model, loss, self.pairs, cache, pad, max_tokens)
        decided = self.next(margins, step)
        if loss.mismatched and cache is not None:
            extend_reference(
                accelerator, cache, loss, self.pairs, decided.batches, model_path, pad, max_tokens
            )
        return decided

    def next(self, margins: torch.Tensor, step: int) -> Round:
        """Round ``self.done`` from the pool's current ``margins``: score, keep the top
        ``k``, plan its seeded batches, log it."""
        cfg, r = self.cfg, self.done
        scores = round_scores(self.deltas, margins, cfg.margin_weight)
        chosen = top_indices(scores, self.k)
        order = plan_batches(self.k, self.hp.batch_size, cfg.every_epochs, round_seed(self.hp.seed, r))
        batches = [[chosen[i] for i in b] for b in cut_to_budget(order, self.budgets[r])]
        sel = torch.tensor(chosen)
        stats = {
            "round": float(r),
            "round_pairs": float(len(chosen)),
            "round_mean_delta": float(self.deltas[sel].mean()),
            "round_mean_margin": float(margins[sel].mean()),
            "pool_mean_margin": float(margins.mean()),
        }
        if self.main:
            with open(self.path, "a") as f:
                f.write(json.dumps({**stats, "round": r, "step": step, "pairs": chosen}) + "\n")
        self.done += 1
        return Round(r, chosen, batches, stats)
