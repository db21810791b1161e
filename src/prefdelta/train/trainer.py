"""The preference-training loop: any registered loss on ``transformers`` models through ``accelerate``.

It reads top to bottom like nanoGPT's: plan the batches, prepare the reference, recover a
checkpoint, then per step set the learning rate, run the micro-batches with backward,
clip, step, log. The parts with their own job live beside it: the losses
(:mod:`.losses`, a registry), one batch's forwards and backward (:mod:`.objective`),
log-probs and prefix sharing (:mod:`.logprobs`), batch plans (:mod:`.batching`), the
shared reference cache (:mod:`.reference`, :mod:`.refcache`), checkpoints
(:mod:`.checkpoint`), metrics and trackers (:mod:`.metrics`, :mod:`.tracking`).

Semantics, identical on one process or many (``accelerate launch``): an optimizer step
covers ``grad_accum`` global batches of ``batch_size`` pairs; each global batch is split
contiguously across processes and, inside a process, into length-sorted forwards; each
loss is reduced with the *global* count, so the gradient is that of the whole batch.
"""

from __future__ import annotations

import math
import shutil
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from prefdelta.train.checkpoint import load_policy, recover_checkpoint, restore_optimizer, save_checkpoint
from prefdelta.train.config import TrainHyper
from prefdelta.train.dynamic import DynamicRounds, budget_batches
from prefdelta.train.logprobs import EncodedPair
from prefdelta.train.losses import get_loss
from prefdelta.train.metrics import MetricsLog, StepCallback, StepSums
from prefdelta.train.objective import BatchObjective
from prefdelta.train.reference import prepare_reference
from prefdelta.train.tracking import check_trackers, project_config

__all__ = ["StepCallback", "TrainHyper", "train_preference"]


def train_preference(
    model_path: str | Path,
    pairs: Sequence[EncodedPair],
    hp: TrainHyper,
    out_dir: Path,
    ref_cache_root: Path | None = None,
    on_step: StepCallback | None = None,
    deltas: Sequence[float] | None = None,
) -> dict[str, float]:
    """Train the model in ``model_path`` with the loss ``hp.algorithm`` on ``pairs``; save
    ``out_dir/final``.

    The model is also the reference (when the loss needs one); reference log-probs come
    from (and go to) the shared cache under ``ref_cache_root``. Metrics go to
    ``out_dir/metrics.jsonl`` (one line per optimizer step) and the trackers of
    ``hp.report_to``; ``on_step(step, total, metrics)`` is called on the main process after
    each step. Returns the last step's metrics (with ``tokens_per_s`` and ``ref_seconds``).

    With ``hp.dynamic``, ``pairs`` is the pool and ``deltas`` its judged deltas: every
    round re-selects the pairs to train on (:mod:`.dynamic`); step lines then carry the
    round's ``round``, ``round_pairs``, ``round_mean_delta`` and ``round_mean_margin``.
    """
    from accelerate.utils import set_seed
    from transformers import AutoTokenizer

    model_path, out_dir = Path(model_path), Path(out_dir)
    if not pairs:
        raise ValueError("no pairs to train on")
    check_trackers(hp.report_to)
    loss = get_loss(hp.algorithm)(hp)
    accelerator = _accelerator(hp, out_dir)
    set_seed(hp.seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = AutoTokenizer.from_pretrained(str(model_path))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    rounds = None
    if hp.dynamic is not None:
        if deltas is None:
            raise ValueError("a dynamic run needs the pool's deltas")
        rounds = DynamicRounds(pairs, deltas, hp, out_dir, accelerator.is_main_process)
    batches = budget_batches(len(pairs), hp) if rounds is None else []  # dynamic: decided per round
    n_batches = len(batches) if rounds is None else rounds.total_batches
    total_steps = math.ceil(n_batches / hp.grad_accum)

    t0 = time.perf_counter()
    cache = prepare_reference(
        accelerator, loss, pairs, batches, model_path, ref_cache_root, pad, hp.max_tokens_per_forward
    )
    ref_seconds = time.perf_counter() - t0

    resume_step = recover_checkpoint(accelerator, out_dir)
    checkpoint = out_dir / "checkpoint"
    model = load_policy(model_path, hp, checkpoint if resume_step else None)
    opt, sched = _optimizer(model, hp, total_steps)
    if resume_step:
        restore_optimizer(checkpoint, opt, sched)
    model, opt = accelerator.prepare(model, opt)
    objective = BatchObjective(accelerator, model, loss, pairs, cache, hp, pad)
    log = MetricsLog(accelerator, out_dir, hp, resume_step, on_step)

    started, tokens, last, round_stats = time.perf_counter(), 0, {}, {}
    updates = sum(len(b) for b in batches[: resume_step * hp.grad_accum])
    try:
        for step in range(resume_step, total_steps):
            while rounds is not None and rounds.remaining() and len(batches) < (step + 1) * hp.grad_accum:
                decided = rounds.decide(
                    accelerator, accelerator.unwrap_model(model), loss, cache, step, model_path, pad
                )
                batches, round_stats = batches + decided.batches, decided.stats
            group = batches[step * hp.grad_accum : (step + 1) * hp.grad_accum]
            sums = StepSums()
            for a, batch in enumerate(group):
                sums += objective(batch, 1.0 / len(group), sync=a == len(group) - 1)
                tokens += sum(_n_tokens(pairs[i]) for i in batch)
                updates += len(batch)
            sums.kl /= len(group)
            grad_norm = accelerator.clip_grad_norm_(model.parameters(), hp.max_grad_norm)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            last = {
                "step": step + 1,
                "epoch": (step * hp.grad_accum * hp.batch_size) / len(pairs),
                "lr": sched.get_last_lr()[0],
                "grad_norm": float(grad_norm),
                "pair_updates": updates,
                **sums.all_reduce(accelerator).means(len(group), with_kl=loss.mismatched),
                **round_stats,
            }
            log.write(step + 1, total_steps, last)
            if hp.save_steps and (step + 1) % hp.save_steps == 0 and step + 1 < total_steps:
                save_checkpoint(accelerator, model, opt, sched, step + 1, out_dir)
    finally:
        log.close()
    elapsed = time.perf_counter() - started
    _save_final(accelerator, model, tokenizer, hp, out_dir)
    return {**last, "tokens_per_s": tokens / elapsed if elapsed > 0 else 0.0, "ref_seconds": ref_seconds,
            "ref_computed": float(cache.computed if cache is not None else 0),
            "is_main_process": float(accelerator.is_main_process)}  # fmt: skip


def _accelerator(hp: TrainHyper, out_dir: Path):
    """The run's Accelerator: precision, device and the trackers of ``hp.report_to``."""
    from accelerate import Accelerator

    return Accelerator(
        mixed_precision=hp.mixed_precision,
        cpu=hp.device == "cpu",
        log_with=list(hp.report_to) or None,
        project_config=project_config(out_dir),
    )


def _optimizer(model, hp: TrainHyper, total_steps: int):
    """AdamW on the trainable parameters and the learning-rate schedule (warm-up, then ``hp.scheduler``)."""
    from transformers import get_scheduler

    model.train()
    opt = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=hp.lr, weight_decay=hp.weight_decay
    )
    warmup = int(hp.warmup_ratio * total_steps)
    return opt, get_scheduler(hp.scheduler, opt, num_warmup_steps=warmup, num_training_steps=total_steps)


def _n_tokens(pair: EncodedPair) -> int:
    return len(pair.prompt) + len(pair.chosen) + len(pair.rejected)


def _save_final(accelerator, model, tokenizer, hp: TrainHyper, out_dir: Path) -> None:
    """``out_dir/final`` (LoRA merged unless ``hp.lora.merge`` is false), ``hyper.json``;
    the checkpoint is removed once the final model is safe."""
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        from prefdelta.checkpoints import save_model

        final_model = accelerator.unwrap_model(model)
        if hp.lora.r > 0 and hp.lora.merge:
            final_model = final_model.merge_and_unload()
        final_model.eval()
        save_model(final_model, tokenizer, out_dir / "final")
        (out_dir / "hyper.json").write_text(hp.model_dump_json())
        if (out_dir / "checkpoint").exists():
            shutil.rmtree(out_dir / "checkpoint")
    accelerator.wait_for_everyone()
