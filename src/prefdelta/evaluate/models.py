"""Which model to evaluate, and the generation backend that serves it.

A model is one of:

- a checkpoint folder (``save_pretrained`` output) — backend ``hf`` or ``vllm``;
- a LoRA adapter folder (``adapter_config.json``) on a base model — ``hf`` loads the base
  and applies the adapter with ``peft`` (merged, so generation runs at base speed); the
  base is ``--base`` or the adapter's ``base_model_name_or_path``;
- a hub id (``Qwen/Qwen2.5-0.5B``) — loaded by ``from_pretrained`` like a folder;
- a served endpoint — backend ``openai`` with ``url`` (vLLM, SGLang, ``transformers
  serve``, hosted APIs); ``model`` is then the server's model name.

The checkpoint hash recorded in ``evals`` identifies the weights: the content hash of the
folder's files (adapter and base for LoRA), or of the hub id / endpoint and model name
when the weights are not local.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from prefdelta.errors import MissingDependency, UserError
from prefdelta.generate.base import Backend
from prefdelta.hashing import file_hash, stable_hash


@dataclass(frozen=True)
class ModelSpec:
    """What to evaluate and how to reach it."""

    model: str
    backend: str = "hf"
    base: str | None = None
    url: str | None = None
    model_id: str | None = None

    @property
    def is_adapter(self) -> bool:
        return Path(self.model, "adapter_config.json").is_file()

    @property
    def base_model(self) -> str | None:
        """The base of a LoRA adapter: ``base``, else the adapter's own record of it."""
        if not self.is_adapter:
            return None
        if self.base:
            return self.base
        cfg = json.loads(Path(self.model, "adapter_config.json").read_text())
        base = cfg.get("base_model_name_or_path")
        if not base:
            raise UserError(f"{self.model}/adapter_config.json names no base model: pass --base")
        beside = Path(self.model, base)  # a relative base is relative to the adapter (train/adapters.py)
        return str(beside.resolve()) if not Path(base).is_absolute() and beside.is_dir() else str(base)

    @property
    def id(self) -> str:
        """The ``model_id`` of the evals rows: given, else the folder name / hub id."""
        if self.model_id:
            return self.model_id
        path = Path(self.model)
        return path.name if path.exists() else self.model


def folder_hash(path: Path) -> str:
    """Content hash of every file of a model folder (names and bytes)."""
    files = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
    return stable_hash(*[(str(p.relative_to(path)), file_hash(str(p))) for p in files])


def checkpoint_hash(spec: ModelSpec) -> str:
    """The weights' identity for the ``evals`` table (see the module docstring)."""
    if spec.url:
        return stable_hash("endpoint", spec.url, spec.model)
    path = Path(spec.model)
    if not path.exists():
        return stable_hash("hub", spec.model)
    own = folder_hash(path)
    base = spec.base_model
    if base is None:
        return own
    return stable_hash(own, folder_hash(Path(base)) if Path(base).exists() else ("hub", base))


def load_hf(spec: ModelSpec, device: str = "cpu"):
    """Model and tokenizer from a folder or hub id; a LoRA adapter is applied and merged.

    Loaded here rather than by ``HFBackend(model_path)`` because of the adapter: the
    merged model is handed to the backend already loaded.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base = spec.base_model
    source = base if base is not None else spec.model
    if not Path(spec.model).exists() and spec.model.startswith((".", "/")):
        raise UserError(f"model folder {spec.model} not found")
    try:
        tokenizer = AutoTokenizer.from_pretrained(spec.model if base is None else source)
        model = AutoModelForCausalLM.from_pretrained(source)
    except OSError as err:
        raise UserError(f"cannot load model {source!r}: {str(err).splitlines()[0]}") from None
    if base is not None:
        try:
            from peft import PeftModel
        except ImportError:
            raise MissingDependency("peft", "trl", "evaluating a LoRA adapter") from None
        model = PeftModel.from_pretrained(model, spec.model).merge_and_unload()
    model.to(device).eval()
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def make_backend(spec: ModelSpec, batch_size: int = 32) -> Backend:
    """The generation backend for ``spec`` (``hf``, ``vllm`` or ``openai``)."""
    if spec.backend == "hf":
        from prefdelta.generate.hf import HFBackend

        model, tokenizer = load_hf(spec)
        return HFBackend(model=model, tokenizer=tokenizer, batch_size=batch_size)
    if spec.backend == "openai":
        if not spec.url:
            raise UserError("backend 'openai' needs --url (the server's base URL, e.g. http://host:8000/v1)")
        from prefdelta.generate.openai import OpenAIBackend

        return OpenAIBackend(spec.url, spec.model)
    if spec.backend == "vllm":
        if spec.is_adapter:
            raise UserError(
                "backend 'vllm' takes a full checkpoint: merge the LoRA adapter first, or serve it with "
                "`vllm serve BASE --enable-lora --lora-modules NAME=ADAPTER` and use --backend openai"
            )
        try:
            from prefdelta.generate.vllm import VLLMBackend
        except ImportError:
            raise MissingDependency("vllm", "vllm", "the vllm backend") from None
        return VLLMBackend(spec.model)
    raise UserError(f"unknown backend {spec.backend!r}; expected hf, vllm or openai")
