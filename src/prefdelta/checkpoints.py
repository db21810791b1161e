"""Model folders: ``save_pretrained`` atomically, load back the standard way."""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

from prefdelta.errors import disk_error


def save_model(model, tokenizer, out_dir: Path) -> None:
    """``save_pretrained`` model and tokenizer into ``out_dir`` atomically (temp + rename).

    A save that fails half-way (a full or read-only disk) removes its temporary folder, so
    no ``<name>.tmp`` is left beside the models, and a disk problem becomes a one-line
    :class:`~prefdelta.errors.DiskError` naming the folder.
    """
    out_dir = Path(out_dir)
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    try:
        if tmp.exists():
            shutil.rmtree(tmp)
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        tmp.rename(out_dir)
    except Exception as err:
        shutil.rmtree(tmp, ignore_errors=True)
        disk = disk_error(err, out_dir, "save the model")
        if disk is not None:
            raise disk from None
        raise


def load_model(path: str | Path, device: str = "cpu", dtype: torch.dtype | None = None):
    """Load a causal LM and its tokenizer from a folder (or hub id) the standard way."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(path))
    kwargs = {"dtype": dtype} if dtype is not None else {}
    model = AutoModelForCausalLM.from_pretrained(str(path), **kwargs).to(device)
    model.eval()
    return model, tokenizer
