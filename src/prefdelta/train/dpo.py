"""A small, readable DPO training loop (nanoGPT-sized) on ``transformers`` models.

The reference model is the policy's starting point; its log-probabilities are computed
once before training (they never change) so each step runs only the policy.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from prefdelta.train.logprobs import sequence_logprobs
from prefdelta.train.losses import dpo_loss, nll_loss
from prefdelta.zoo import encode_examples, load_model, save_model


@dataclass(frozen=True)
class DPOHyper:
    """Hyper-parameters of one DPO run; see :class:`prefdelta.config.TrainConfig`."""

    beta: float = 0.1
    lr: float = 1e-4
    epochs: int = 2
    batch_size: int = 16
    nll_weight: float = 0.0
    seed: int = 0


def train_dpo(
    model_path: str | Path,
    prompts: Sequence[str],
    chosen: Sequence[str],
    rejected: Sequence[str],
    hp: DPOHyper,
    out_dir: Path,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, float]:
    """Train the model in ``model_path`` with DPO on the given pairs; save to ``out_dir/final``.

    Metrics (loss, rewards, margins, preference accuracy, log-probs) go to
    ``out_dir/metrics.jsonl``, one line per step.
    """
    torch.manual_seed(hp.seed)
    model, tokenizer = load_model(model_path)
    pad = tokenizer.pad_token_id
    ch = encode_examples(tokenizer, prompts, chosen)
    rj = encode_examples(tokenizer, prompts, rejected)
    n = len(ch)
    with torch.no_grad():
        ref_c = torch.cat(
            [
                sequence_logprobs(model, [s for s, _ in ch[i : i + 64]], [p for _, p in ch[i : i + 64]], pad)
                for i in range(0, n, 64)
            ]
        )
        ref_r = torch.cat(
            [
                sequence_logprobs(model, [s for s, _ in rj[i : i + 64]], [p for _, p in rj[i : i + 64]], pad)
                for i in range(0, n, 64)
            ]
        )
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=hp.lr, weight_decay=0.0)
    rng = random.Random(hp.seed)
    steps_per_epoch = (n + hp.batch_size - 1) // hp.batch_size
    total = steps_per_epoch * hp.epochs
    out_dir.mkdir(parents=True, exist_ok=True)
    step = 0
    last: dict[str, float] = {}
    with open(out_dir / "metrics.jsonl", "w") as log:
        for epoch in range(hp.epochs):
            order = list(range(n))
            rng.shuffle(order)
            for start in range(0, n, hp.batch_size):
                idx = order[start : start + hp.batch_size]
                seqs = [ch[i][0] for i in idx] + [rj[i][0] for i in idx]
                plens = [ch[i][1] for i in idx] + [rj[i][1] for i in idx]
                lp = sequence_logprobs(model, seqs, plens, pad)
                pc, pr = lp[: len(idx)], lp[len(idx) :]
                out = dpo_loss(pc, pr, ref_c[idx], ref_r[idx], beta=hp.beta)
                loss = out.loss
                if hp.nll_weight > 0:
                    lens = torch.tensor([len(ch[i][0]) - ch[i][1] for i in idx], dtype=torch.float)
                    loss = loss + hp.nll_weight * nll_loss(pc, lens)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                opt.step()
                step += 1
                margin = out.chosen_rewards - out.rejected_rewards
                last = {
                    "step": step,
                    "epoch": epoch,
                    "loss": float(loss.detach()),
                    "rewards_chosen": float(out.chosen_rewards.mean()),
                    "rewards_rejected": float(out.rejected_rewards.mean()),
                    "margin": float(margin.mean()),
                    "preference_accuracy": float((margin > 0).float().mean()),
                    "logp_chosen": float(pc.detach().mean()),
                    "logp_rejected": float(pr.detach().mean()),
                }
                log.write(json.dumps(last) + "\n")
                if progress is not None:
                    progress(step, total)
    model.eval()
    save_model(model, tokenizer, out_dir / "final")
    return last
