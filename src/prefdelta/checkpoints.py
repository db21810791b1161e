"""Model folders: ``save_pretrained`` atomically, load back the standard way."""

from __future__ import annotations

import shutil
from pathlib import Path

import torch


def save_model(model, tokenizer, out_dir: Path) -> None:
    """``save_pretrained`` model and tokenizer into ``out_dir`` atomically (temp + rename)."""
    out_dir = Path(out_dir)
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    tmp.rename(out_dir)


def load_model(path: str | Path, device: str = "cpu", dtype: torch.dtype | None = None):
    """Load a causal LM and its tokenizer from a folder (or hub id) the standard way."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(path))
    kwargs = {"dtype": dtype} if dtype is not None else {}
    model = AutoModelForCausalLM.from_pretrained(str(path), **kwargs).to(device)
    model.eval()
    return model, tokenizer
