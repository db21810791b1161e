"""Resumable runs: every ``save_steps`` steps the model, optimizer, scheduler and step go
to ``<run>/checkpoint`` atomically; a killed run started again with the same arguments
continues from there and ends with the same weights."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from prefdelta.train.config import TrainHyper


def save_checkpoint(accelerator, model, opt, sched, step: int, out_dir: Path) -> None:
    """Write ``out_dir/checkpoint`` (through ``checkpoint.tmp``, the old one kept until the swap)."""
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


def recover_checkpoint(accelerator, out_dir: Path) -> int:
    """The step a previous attempt of this run reached (0: start afresh); a run killed
    between the two renames of :func:`save_checkpoint` gets its old checkpoint back."""
    checkpoint = out_dir / "checkpoint"
    if not checkpoint.exists() and (out_dir / "checkpoint.old").exists():
        if accelerator.is_main_process:
            (out_dir / "checkpoint.old").rename(checkpoint)
        accelerator.wait_for_everyone()
    return json.loads((checkpoint / "state.json").read_text())["step"] if checkpoint.exists() else 0


def load_policy(model_path: Path, hp: TrainHyper, checkpoint: Path | None):
    """The trainable model: the student (or the checkpoint's weights), with fresh or
    restored LoRA adapters when ``hp.lora.r`` > 0."""
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


def restore_optimizer(checkpoint: Path, opt, sched) -> None:
    state = torch.load(checkpoint / "optim.pt", weights_only=False)
    opt.load_state_dict(state["optimizer"])
    sched.load_state_dict(state["scheduler"])
