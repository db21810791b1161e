"""The preference-training loop: DPO or KTO on ``transformers`` models through ``accelerate``.

One readable loop (nanoGPT-sized); the parts with their own job live elsewhere:
losses (:mod:`.losses`), log-probs and prefix sharing (:mod:`.logprobs`), batch plans
(:mod:`.batching`), the shared reference cache (:mod:`.refcache`).

Semantics, identical on one process or many (``accelerate launch``): an optimizer step
covers ``grad_accum`` global batches of ``batch_size`` pairs; each global batch is split
contiguously across processes and, inside a process, into length-sorted forwards; each
loss is reduced with the *global* count, so the gradient is that of the whole batch
(DDP averages over processes, hence the ``× world`` on each process's loss).

KTO on pairs: each pair gives a desirable example (prompt, chosen) and an undesirable
one (prompt, rejected); KTO's KL reference point uses, for pair ``j`` of a global batch,
both completions of pair ``j−1`` — mismatched, as in the paper and TRL's rotation.

Resume: every ``save_steps`` steps the model (``save_pretrained``), optimizer, scheduler
and step are written to ``out_dir/checkpoint`` atomically; a killed run started again
with the same arguments continues from there and ends with the same weights.
"""

from __future__ import annotations

import contextlib
import json
import math
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from prefdelta.train.batching import micro_batches, plan_batches, shard
from prefdelta.train.config import TrainHyper
from prefdelta.train.logprobs import EncodedPair, prefix_shared_logprobs
from prefdelta.train.losses import dpo_loss, kto_kl_estimate, kto_loss, nll_loss
from prefdelta.train.refcache import RefCache, model_key

StepCallback = Callable[[int, int, dict[str, float]], None]


def _global_sum(accelerator, values: torch.Tensor) -> torch.Tensor:
    if accelerator.num_processes == 1:
        return values
    return accelerator.reduce(values.to(accelerator.device), reduction="sum").cpu()


def _save_checkpoint(accelerator, model, opt, sched, step: int, out_dir: Path) -> None:
    if accelerator.is_main_process:
        tmp = out_dir / "checkpoint.tmp"
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        accelerator.unwrap_model(model).save_pretrained(tmp / "model")
        torch.save({"optimizer": opt.state_dict(), "scheduler": sched.state_dict()}, tmp / "optim.pt")
        (tmp / "state.json").write_text(json.dumps({"step": step}))
        final = out_dir / "checkpoint"
        old = out_dir / "checkpoint.old"
        if final.exists():
            final.rename(old)
        tmp.rename(final)
        if old.exists():
            shutil.rmtree(old)
    accelerator.wait_for_everyone()


def _load_policy(model_path: Path, hp: TrainHyper, checkpoint: Path | None):
    from transformers import AutoModelForCausalLM

    source = checkpoint / "model" if checkpoint is not None and hp.lora.r == 0 else model_path
    model = AutoModelForCausalLM.from_pretrained(str(source), dtype=torch.float32)
    if hp.lora.r > 0:
        from peft import LoraConfig, PeftModel, get_peft_model

        if checkpoint is not None:
            model = PeftModel.from_pretrained(model, str(checkpoint / "model"), is_trainable=True)
        else:
            cfg = LoraConfig(
                r=hp.lora.r,
                lora_alpha=hp.lora.alpha,
                lora_dropout=hp.lora.dropout,
                target_modules=hp.lora.target_modules,
                task_type="CAUSAL_LM",
            )
            model = get_peft_model(model, cfg)
    return model


def train_preference(
    model_path: str | Path,
    pairs: Sequence[EncodedPair],
    hp: TrainHyper,
    out_dir: Path,
    ref_cache_root: Path | None = None,
    on_step: StepCallback | None = None,
) -> dict[str, float]:
    """Train the model in ``model_path`` with DPO or KTO on ``pairs``; save ``out_dir/final``.

    The model is also the reference. Reference log-probs come from (and go to) the shared
    cache under ``ref_cache_root``. Metrics go to ``out_dir/metrics.jsonl`` (one line per
    optimizer step) and, with ``hp.tensorboard``, to ``out_dir/tb``. ``on_step(step,
    total, metrics)`` is called on the main process after each step. Returns the last
    step's metrics (with ``tokens_per_s`` and ``ref_seconds`` added).
    """
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from transformers import AutoModelForCausalLM, AutoTokenizer, get_scheduler

    model_path = Path(model_path)
    out_dir = Path(out_dir)
    accelerator = Accelerator(mixed_precision=hp.mixed_precision, cpu=hp.device == "cpu")
    rank, world = accelerator.process_index, accelerator.num_processes
    set_seed(hp.seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = AutoTokenizer.from_pretrained(str(model_path))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    n = len(pairs)
    if n == 0:
        raise ValueError("no pairs to train on")
    if hp.algorithm == "kto" and hp.batch_size < 2:
        raise ValueError("KTO needs batch_size >= 2: its KL point uses other pairs of the batch")
    batches = plan_batches(n, hp.batch_size, hp.epochs, hp.seed)
    total_steps = math.ceil(len(batches) / hp.grad_accum)

    # Reference log-probs: every (prompt, completion) the run will score, computed once.
    t0 = time.perf_counter()
    items = [(p.prompt, p.chosen) for p in pairs] + [(p.prompt, p.rejected) for p in pairs]
    if hp.algorithm == "kto":
        for b in batches:
            for j, i in enumerate(b):
                prev = pairs[b[j - 1]]
                items += [(pairs[i].prompt, prev.chosen), (pairs[i].prompt, prev.rejected)]
    cache = RefCache(ref_cache_root, model_key(model_path))
    if cache.missing(items):
        if ref_cache_root is None and world > 1:
            raise ValueError("multi-process training needs a ref_cache_root to share reference log-probs")
        if accelerator.is_main_process:
            ref = AutoModelForCausalLM.from_pretrained(str(model_path), dtype=torch.float32).to(
                accelerator.device
            )
            cache.compute(ref, items, pad, hp.max_tokens_per_forward)
            del ref
        accelerator.wait_for_everyone()
        if not accelerator.is_main_process:
            cache.reload()
    else:
        cache.reused += len(items)
    ref_seconds = time.perf_counter() - t0

    checkpoint = out_dir / "checkpoint"
    if not checkpoint.exists() and (out_dir / "checkpoint.old").exists():  # killed mid-swap
        if accelerator.is_main_process:
            (out_dir / "checkpoint.old").rename(checkpoint)
        accelerator.wait_for_everyone()
    resume_step = json.loads((checkpoint / "state.json").read_text())["step"] if checkpoint.exists() else 0
    model = _load_policy(model_path, hp, checkpoint if resume_step else None)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=hp.lr, weight_decay=hp.weight_decay)
    sched = get_scheduler(
        hp.scheduler, opt, num_warmup_steps=int(hp.warmup_ratio * total_steps), num_training_steps=total_steps
    )
    if resume_step:
        state = torch.load(checkpoint / "optim.pt", weights_only=False)
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
    model, opt = accelerator.prepare(model, opt)

    metrics_path = out_dir / "metrics.jsonl"
    if accelerator.is_main_process:
        kept = []
        if resume_step and metrics_path.exists():
            kept = [
                ln for ln in metrics_path.read_text().splitlines() if json.loads(ln)["step"] <= resume_step
            ]
        metrics_path.write_text("".join(ln + "\n" for ln in kept))
    writer = None
    if hp.tensorboard and accelerator.is_main_process:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(out_dir / "tb"))

    def backward(loss: torch.Tensor, weight: float, sync: bool) -> None:
        with contextlib.nullcontext() if sync else accelerator.no_sync(model):
            accelerator.backward(loss * world * weight)

    def batch_loss(batch: list[int], weight: float, sync: bool) -> torch.Tensor:
        """Backward of this process's share of one global batch (its loss × ``weight``).

        Returns the process's metric sums: loss, rewards chosen/rejected, margin, pairs
        ranked right, logp chosen/rejected, pairs, NLL, and (KTO) the KL point.
        """
        mine = shard(batch, rank, world)
        sums = torch.zeros(10)
        if hp.algorithm == "dpo":
            n_global = len(batch)
            chosen_tokens = sum(len(pairs[i].chosen) for i in batch)
            lengths = [
                len(pairs[i].prompt) + 2 * max(len(pairs[i].chosen), len(pairs[i].rejected)) for i in mine
            ]
            groups = micro_batches(lengths, hp.max_tokens_per_forward)
            for g, group in enumerate(groups):
                idx = [mine[k] for k in group]
                ps = [pairs[i] for i in idx]
                lp = prefix_shared_logprobs(
                    model, [p.prompt for p in ps], [[p.chosen, p.rejected] for p in ps], pad
                )
                ref_c = cache.get([(p.prompt, p.chosen) for p in ps]).to(lp.device)
                ref_r = cache.get([(p.prompt, p.rejected) for p in ps]).to(lp.device)
                lens_c = torch.tensor([len(p.chosen) for p in ps], dtype=torch.float32, device=lp.device)
                lens_r = torch.tensor([len(p.rejected) for p in ps], dtype=torch.float32, device=lp.device)
                out = dpo_loss(
                    lp[:, 0],
                    lp[:, 1],
                    ref_c,
                    ref_r,
                    beta=hp.beta,
                    label_smoothing=hp.label_smoothing,
                    loss_type=hp.loss_type,
                    chosen_lengths=lens_c,
                    rejected_lengths=lens_r,
                )
                loss = out.losses.sum() / n_global
                nll = nll_loss(lp[:, 0], torch.tensor(float(chosen_tokens)))
                if hp.nll_weight > 0:
                    loss = loss + hp.nll_weight * nll
                backward(loss, weight, sync and g == len(groups) - 1)
                margin = out.chosen_rewards - out.rejected_rewards
                sums += torch.tensor(
                    [
                        float(loss.detach()),
                        float(out.chosen_rewards.sum()),
                        float(out.rejected_rewards.sum()),
                        float(margin.sum()),
                        float((margin > 0).float().sum()),
                        float(lp[:, 0].detach().sum()),
                        float(lp[:, 1].detach().sum()),
                        float(len(idx)),
                        float(nll.detach()),
                        0.0,
                    ]
                )
            if not groups:  # more processes than pairs: still join the gradient all-reduce
                backward(sum(p.sum() for p in model.parameters() if p.requires_grad) * 0.0, weight, sync)
            return sums
        # KTO: forward all of this process's groups, then the KL point, then one backward.
        lengths = [len(pairs[i].prompt) + 4 * max(len(pairs[i].chosen), len(pairs[i].rejected)) for i in mine]
        prev = {i: batch[(batch.index(i) - 1) % len(batch)] for i in mine}
        logps, refs, kl_sum = [], [], torch.zeros(2)
        for group in micro_batches(lengths, hp.max_tokens_per_forward):
            idx = [mine[k] for k in group]
            ps = [pairs[i] for i in idx]
            conts = [
                [p.chosen, p.rejected, pairs[prev[i]].chosen, pairs[prev[i]].rejected]
                for i, p in zip(idx, ps, strict=True)
            ]
            lp = prefix_shared_logprobs(model, [p.prompt for p in ps], conts, pad, no_grad_slots=(2, 3))
            ref = torch.stack(
                [cache.get([(p.prompt, c[s]) for p, c in zip(ps, conts, strict=True)]) for s in range(4)], 1
            ).to(lp.device)
            kl_sum += torch.tensor([float((lp[:, 2:] - ref[:, 2:]).detach().sum()), 2.0 * len(idx)])
            logps.append(lp[:, :2])
            refs.append(ref[:, :2])
        kl_tot = _global_sum(accelerator, kl_sum)
        kl = kto_kl_estimate(kl_tot[0:1] / kl_tot[1], torch.zeros(1))
        if logps:
            lp, ref = torch.cat(logps), torch.cat(refs)
            policy = torch.cat([lp[:, 0], lp[:, 1]])
            desirable = torch.cat(
                [torch.ones(len(lp), dtype=torch.bool), torch.zeros(len(lp), dtype=torch.bool)]
            )
            out = kto_loss(
                policy,
                torch.cat([ref[:, 0], ref[:, 1]]),
                desirable.to(policy.device),
                kl.to(policy.device),
                beta=hp.beta,
                desirable_weight=hp.desirable_weight,
                undesirable_weight=hp.undesirable_weight,
            )
            chosen_tokens = sum(len(pairs[i].chosen) for i in batch)
            loss = out.losses.sum() / (2 * len(batch))
            nll = nll_loss(lp[:, 0], torch.tensor(float(chosen_tokens)))
            if hp.nll_weight > 0:
                loss = loss + hp.nll_weight * nll
            margin = out.chosen_rewards - out.rejected_rewards
            metrics = [
                float(loss.detach()),
                float(out.chosen_rewards.sum()),
                float(out.rejected_rewards.sum()),
                float(margin.sum()),
                float((margin > 0).float().sum()),
                float(lp[:, 0].detach().sum()),
                float(lp[:, 1].detach().sum()),
                float(len(lp)),
                float(nll.detach()),
            ]
        else:
            loss = sum(p.sum() for p in model.parameters() if p.requires_grad) * 0.0
            metrics = [0.0] * 9
        backward(loss, weight, sync)
        return torch.tensor([*metrics, float(kl)])

    started = time.perf_counter()
    tokens = 0
    last: dict[str, float] = {}
    with contextlib.ExitStack() as stack:
        log = stack.enter_context(open(metrics_path, "a")) if accelerator.is_main_process else None
        if writer is not None:
            stack.callback(writer.close)
        for step in range(resume_step, total_steps):
            group = batches[step * hp.grad_accum : (step + 1) * hp.grad_accum]
            agg = torch.zeros(10)
            for a, batch in enumerate(group):
                sums = batch_loss(batch, 1.0 / len(group), sync=a == len(group) - 1)
                agg[:9] += sums[:9]
                agg[9] += float(sums[9]) / len(group)
                tokens += sum(
                    len(pairs[i].prompt) + len(pairs[i].chosen) + len(pairs[i].rejected) for i in batch
                )
            grad_norm = accelerator.clip_grad_norm_(model.parameters(), hp.max_grad_norm)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            tot = _global_sum(accelerator, agg[:9].clone())
            count = max(float(tot[7]), 1.0)
            loss_total = float(tot[0]) / len(group)
            nll_value = float(tot[8]) / len(group)
            last = {
                "step": step + 1,
                "epoch": (step * hp.grad_accum * hp.batch_size) / n,
                "loss": loss_total,
                "lr": sched.get_last_lr()[0],
                "grad_norm": float(grad_norm),
                "rewards_chosen": float(tot[1]) / count,
                "rewards_rejected": float(tot[2]) / count,
                "margin": float(tot[3]) / count,
                "preference_accuracy": float(tot[4]) / count,
                "logp_chosen": float(tot[5]) / count,
                "logp_rejected": float(tot[6]) / count,
                "nll_chosen": nll_value,
            }
            if hp.algorithm == "kto":
                last["kl"] = float(agg[9])
            if log is not None:
                log.write(json.dumps(last) + "\n")
                log.flush()
                if writer is not None:
                    for k, v in last.items():
                        if k != "step":
                            writer.add_scalar(f"train/{k}", v, step + 1)
            if hp.save_steps and (step + 1) % hp.save_steps == 0 and step + 1 < total_steps:
                _save_checkpoint(accelerator, model, opt, sched, step + 1, out_dir)
            if on_step is not None and accelerator.is_main_process:
                on_step(step + 1, total_steps, last)
    elapsed = time.perf_counter() - started
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        from prefdelta.checkpoints import save_model

        final_model = accelerator.unwrap_model(model)
        if hp.lora.r > 0 and hp.lora.merge:
            final_model = final_model.merge_and_unload()
        final_model.eval()
        save_model(final_model, tokenizer, out_dir / "final")
        (out_dir / "hyper.json").write_text(hp.model_dump_json())
        if checkpoint.exists():
            shutil.rmtree(checkpoint)
    accelerator.wait_for_everyone()
    last = dict(last)
    last["tokens_per_s"] = tokens / elapsed if elapsed > 0 else 0.0
    last["ref_seconds"] = ref_seconds
    last["ref_computed"] = float(cache.computed)
    last["is_main_process"] = float(accelerator.is_main_process)
    return last
