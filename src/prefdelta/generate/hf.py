"""Batched generation with ``transformers``: left-padded, KV-cached, sampled or greedy.

Why batched: on a CPU a tiny model spends most of its time in Python overhead per
forward; one batch of 64 prompts costs little more than one prompt. On a GPU the same
holds for memory bandwidth: decoding one sequence at a time leaves the device idle.

:func:`generate_all` is the low-level path the arith stages use (a loaded model and
plain prompts); :class:`HFBackend` is the :class:`~prefdelta.generate.base.Backend` a
generator config names (``backend: hf``): it loads a model folder or hub id, picks the
device and dtype, renders chat messages with the tokenizer's chat template, sizes
batches to the free memory and halves them on an out-of-memory error.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from prefdelta.errors import UserError
from prefdelta.generate.base import Request, Result, Sampling, check_unique_ids


@dataclass(frozen=True)
class Completion:
    text: str
    finish_reason: str  # "stop" (eos or stop string) or "length"
    prompt_tokens: int
    completion_tokens: int


def _cut_at_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    cut = min((i for s in stop if (i := text.find(s)) >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


class GeneratedStop:
    """Stopping criterion: a row is done once its *generated* text contains a stop string.

    ``transformers``' own ``stop_strings`` also matches across the prompt boundary (a
    prompt ending in a newline plus one generated newline "contains" ``"\n\n"``), which
    ends generations early; servers (vLLM, OpenAI) only match the generated text.
    Only the last ``window`` tokens are decoded per step, so a step costs O(batch).
    """

    def __init__(self, tokenizer: Any, stops: Sequence[str], prompt_width: int) -> None:
        self.tokenizer = tokenizer
        self.stops = [s for s in stops if s]
        self.prompt_width = prompt_width
        longest = max((len(s) for s in self.stops), default=1)
        self.window = longest + 8  # a token spans at least one character, plus merged neighbours
        self.done: torch.Tensor | None = None

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        new = input_ids[:, self.prompt_width :]
        if self.done is None:
            self.done = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        tails = self.tokenizer.batch_decode(new[:, -self.window :].tolist(), skip_special_tokens=True)
        hit = torch.tensor([any(s in t for s in self.stops) for t in tails], device=input_ids.device)
        self.done = self.done | hit
        return self.done


@torch.inference_mode()
def generate_batch(
    model,
    tokenizer,
    prompts: Sequence[str],
    *,
    max_new_tokens: int = 128,
    temperature: float = 0.0,
    top_p: float = 1.0,
    stop: Sequence[str] = (),
    seed: int = 0,
    add_special_tokens: bool = True,
) -> list[Completion]:
    """Generate one completion per prompt in a single left-padded batch.

    ``temperature`` 0 is greedy (:func:`greedy_tokens` when there are no stop strings,
    which drops finished rows; ``model.generate`` otherwise). Sampling is seeded per
    batch, so the same prompts, seed and model give the same texts. Stop strings end a
    row's generation early (``transformers``' ``stop_strings``) and cut the decoded text
    before the stop string.
    ``add_special_tokens`` is False for chat-rendered prompts, which carry their own BOS.
    """
    tokenizer.padding_side = "left"
    enc = tokenizer(list(prompts), return_tensors="pt", padding=True, add_special_tokens=add_special_tokens)
    device = next(model.parameters()).device
    enc = {k: v.to(device) for k, v in enc.items()}
    torch.manual_seed(seed)
    if temperature <= 0 and not stop:
        rows = greedy_tokens(
            model, enc["input_ids"], enc["attention_mask"], max_new_tokens, tokenizer.eos_token_id
        )
    else:
        kwargs: dict[str, object] = dict(
            max_new_tokens=max_new_tokens,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
            use_cache=True,
        )
        if stop:
            from transformers import StoppingCriteriaList

            criterion = GeneratedStop(tokenizer, stop, enc["input_ids"].shape[1])
            kwargs.update(stopping_criteria=StoppingCriteriaList([criterion]))
        if temperature > 0:
            kwargs.update(do_sample=True, temperature=temperature, top_p=top_p, top_k=0)
        else:
            kwargs.update(do_sample=False)
        out = model.generate(**enc, **kwargs)
        rows = out[:, enc["input_ids"].shape[1] :].tolist()
    results = []
    prompt_lens = enc["attention_mask"].sum(dim=1).tolist()
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    for row, n_prompt in zip(rows, prompt_lens, strict=True):
        n_gen = len(row)
        finished = False
        if eos in row:
            n_gen = row.index(eos) + 1
            finished = True
        else:
            while n_gen and row[n_gen - 1] == pad:  # rows finished early by a stop string, then padded
                n_gen -= 1
        tokens = [t for t in row[:n_gen] if t not in (eos, pad)]
        text = tokenizer.decode(tokens, skip_special_tokens=True)
        text, stopped = _cut_at_stop(text, stop)
        results.append(Completion(text, "stop" if finished or stopped else "length", int(n_prompt), n_gen))
    return results


@torch.inference_mode()
def greedy_tokens(
    model, input_ids: torch.Tensor, attention_mask: torch.Tensor, max_new_tokens: int, eos: int | None
) -> list[list[int]]:
    """Greedy continuations of a left-padded batch; rows that reach EOS leave the batch.

    Why not ``model.generate``: it runs every row until the last one finishes, so a batch
    whose completions range from 20 to 60 tokens spends a third of its row-steps on rows
    that are done. Here the finished rows are dropped from the batch and the KV cache
    (``DynamicCache.batch_select_indices``) once at least an eighth of the live rows are
    done (a copy of the cache each time, so not every step). Each row's tokens are those
    of ``generate(do_sample=False)``: the same forward per row, position ids from the
    padding mask as ``generate`` computes them (tested equal on every zoo family).

    Returns each row's generated ids: up to and including EOS, else ``max_new_tokens`` ids.
    """
    from transformers import DynamicCache

    device = input_ids.device
    mask = attention_mask
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    cache = DynamicCache()
    out = model(
        input_ids=input_ids, attention_mask=mask, position_ids=positions, cache=cache, use_cache=True,
        logits_to_keep=1,
    )  # fmt: skip
    rows: list[list[int]] = [[] for _ in range(input_ids.shape[0])]
    alive = torch.arange(input_ids.shape[0], device=device)
    nxt = out.logits[:, -1].argmax(-1)
    position = positions[:, -1]
    finished = torch.zeros_like(nxt, dtype=torch.bool)
    for step in range(max_new_tokens):
        for r, t, f in zip(alive.tolist(), nxt.tolist(), finished.tolist(), strict=True):
            if not f:
                rows[r].append(t)
        if eos is not None:
            finished = finished | (nxt == eos)
        if step == max_new_tokens - 1 or bool(finished.all()):
            break
        if int(finished.sum()) >= max(1, len(alive) // 8):
            keep = (~finished).nonzero().squeeze(1)
            cache.batch_select_indices(keep)
            alive, nxt, mask, position = alive[keep], nxt[keep], mask[keep], position[keep]
            finished = finished[keep]
        # a finished row still in the batch keeps decoding; what it adds is never kept
        mask = torch.cat([mask, mask.new_ones(mask.shape[0], 1)], 1)
        position = position + 1
        out = model(
            input_ids=nxt.unsqueeze(1),
            attention_mask=mask,
            position_ids=position.unsqueeze(1),
            cache=cache,
            use_cache=True,
        )
        nxt = out.logits[:, -1].argmax(-1)
    return rows


def generate_all(
    model,
    tokenizer,
    prompts: Sequence[str],
    *,
    batch_size: int = 64,
    on_batch: Callable[[int], None] | None = None,
    **kwargs,
) -> list[Completion]:
    """:func:`generate_batch` over ``prompts`` in chunks; sorts by length to cut padding."""
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    results: list[Completion | None] = [None] * len(prompts)
    base_seed = int(kwargs.pop("seed", 0))
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        outs = generate_batch(model, tokenizer, [prompts[i] for i in chunk], seed=base_seed + start, **kwargs)
        for i, o in zip(chunk, outs, strict=True):
            results[i] = o
        if on_batch is not None:
            on_batch(len(chunk))
    return [r for r in results if r is not None]


# ---- device, dtype and memory --------------------------------------------------------------


def pick_device(device: str = "auto") -> str:
    """``"auto"`` -> ``cuda`` when available, then ``mps``, else ``cpu``; anything else as given."""
    if device != "auto":
        return device
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def pick_dtype(dtype: str, device: str) -> torch.dtype:
    """``"auto"``: bfloat16 on a GPU that supports it, float16 on other accelerators, float32 on CPU."""
    if dtype != "auto":
        if dtype not in _DTYPES:
            raise UserError(f"dtype must be auto, {', '.join(_DTYPES)}; got '{dtype}'")
        return _DTYPES[dtype]
    if device.startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.startswith("mps"):
        return torch.float16
    return torch.float32


def free_memory_bytes(device: str) -> int:
    """Free memory on ``device`` (accelerator memory, or available RAM for the CPU)."""
    if device.startswith("cuda"):
        free, _ = torch.cuda.mem_get_info(torch.device(device))
        return int(free)
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return 4 << 30


def bytes_per_sequence(config: Any, tokens: int, dtype: torch.dtype) -> int:
    """KV cache plus one step of logits for one sequence of ``tokens`` tokens.

    KV cache = 2 (K and V) × layers × kv_heads × head_dim × tokens × bytes per element;
    logits = vocab × 4 bytes (float32) per step.
    """
    layers = getattr(config, "num_hidden_layers", None) or getattr(config, "n_layer", 1)
    hidden = getattr(config, "hidden_size", None) or getattr(config, "n_embd", 1)
    heads = getattr(config, "num_attention_heads", None) or getattr(config, "n_head", 1)
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    head_dim = getattr(config, "head_dim", None) or hidden // heads
    elem = torch.finfo(dtype).bits // 8
    return 2 * layers * kv_heads * head_dim * tokens * elem + getattr(config, "vocab_size", 0) * 4


def batch_size_for_memory(
    config: Any, tokens: int, dtype: torch.dtype, free_bytes: int, *, share: float = 0.5, cap: int = 256
) -> int:
    """Sequences that fit in ``share`` of ``free_bytes`` (at least 1, at most ``cap``)."""
    per = max(1, bytes_per_sequence(config, tokens, dtype))
    return max(1, min(cap, int(free_bytes * share) // per))


def _is_oom(err: BaseException) -> bool:
    return isinstance(err, torch.OutOfMemoryError) or "out of memory" in str(err).lower()


# ---- the backend ---------------------------------------------------------------------------


class HFBackend:
    """:class:`~prefdelta.generate.base.Backend` running a ``transformers`` causal LM in-process.

    Args:
        model_path: a ``save_pretrained`` folder or a hub id, loaded through
            ``AutoModelForCausalLM`` / ``AutoTokenizer``. Omit it and pass ``model`` and
            ``tokenizer`` to wrap an already loaded pair.
        device: ``"auto"`` (cuda, then mps, then cpu) or a torch device string.
        dtype: ``"auto"`` (bf16/fp16 on accelerators, fp32 on CPU), ``float32``,
            ``float16`` or ``bfloat16``.
        batch_size: sequences per forward batch; ``None`` sizes batches to half the free
            memory (KV cache estimate), capped at ``max_batch_size`` (64–512 typical).
        chat_template: render ``messages`` requests with the tokenizer's chat template
            (the only way: a request with messages fails with a clear error row when the
            tokenizer has none).
    """

    name = "hf"
    seeded_per_request = False  # sampling is seeded per batch: texts depend on batch composition

    def __init__(
        self,
        model_path: str | Path | None = None,
        *,
        model: Any = None,
        tokenizer: Any = None,
        device: str = "auto",
        dtype: str = "auto",
        batch_size: int | None = None,
        max_batch_size: int = 256,
    ) -> None:
        if (model_path is None) == (model is None):
            raise UserError("HFBackend needs either model_path or an already loaded model (and tokenizer)")
        if model is not None and tokenizer is None:
            raise UserError("HFBackend: a loaded model needs its tokenizer")
        if model_path is not None:
            from prefdelta.checkpoints import load_model

            path = Path(model_path)
            if path.exists() and not (path / "config.json").is_file():
                raise UserError(f"model folder {path} has no config.json (expected a save_pretrained folder)")
            self.device = pick_device(device)
            self.dtype = pick_dtype(dtype, self.device)
            try:
                model, tokenizer = load_model(model_path, device=self.device, dtype=self.dtype)
            except OSError as err:
                first = str(err).splitlines()[0] if str(err) else type(err).__name__
                raise UserError(
                    f"could not load model '{model_path}' (a folder or hub id): {first}"
                ) from None
        else:
            param = next(model.parameters())
            self.device, self.dtype = str(param.device), param.dtype
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        self.model = model
        self.tokenizer = tokenizer
        self.model_path = str(model_path) if model_path is not None else None
        self.batch_size = batch_size
        self.max_batch_size = max_batch_size

    def __repr__(self) -> str:
        return f"HFBackend(model_path={self.model_path!r}, device={self.device!r}, dtype={self.dtype})"

    def describe(self) -> dict[str, Any]:
        """Provenance of this backend."""
        return {
            "backend": self.name,
            "model": self.model_path,
            "device": self.device,
            "dtype": str(self.dtype),
        }

    def render(self, request: Request) -> str:
        """The text fed to the model: the prompt, or the messages through the chat template."""
        if request.prompt is not None:
            return request.prompt
        if not getattr(self.tokenizer, "chat_template", None):
            raise UserError(
                f"request {request.request_id}: chat messages need a chat template, and the tokenizer of "
                f"{self.model_path or 'this model'} has none; send a prompt instead"
            )
        return self.tokenizer.apply_chat_template(
            [dict(m) for m in request.messages or ()], tokenize=False, add_generation_prompt=True
        )

    def _batch_size(self, prompt_chars: int, max_tokens: int) -> int:
        if self.batch_size is not None:
            return self.batch_size
        tokens = prompt_chars + max_tokens  # chars bound tokens from above for BPE tokenizers
        free = free_memory_bytes(self.device)
        return batch_size_for_memory(self.model.config, tokens, self.dtype, free, cap=self.max_batch_size)

    def generate(
        self, requests: Sequence[Request], on_result: Callable[[Result], None] | None = None
    ) -> list[Result]:
        """``sampling.n`` results per request; requests with equal sampling share batches."""
        check_unique_ids(requests)
        out: dict[tuple[str, int], Result] = {}

        def emit(result: Result) -> None:
            out[(result.request_id, result.index)] = result
            if on_result is not None:
                on_result(result)

        groups: dict[tuple[Sampling, bool], list[tuple[Request, int, str]]] = {}
        for req in requests:
            try:
                text = self.render(req)
            except UserError as err:
                for i in range(req.sampling.n):
                    emit(Result(req.request_id, i, "", "error", error=str(err)))
                continue
            key = (replace(req.sampling, n=1), req.messages is not None)
            groups.setdefault(key, []).extend((req, i, text) for i in range(req.sampling.n))
        for (sampling, chat), items in groups.items():
            items.sort(key=lambda it: len(it[2]))
            start = 0
            size = self._batch_size(len(items[-1][2]), sampling.max_tokens)
            while start < len(items):
                chunk = items[start : start + size]
                try:
                    outs = generate_batch(
                        self.model,
                        self.tokenizer,
                        [text for _, _, text in chunk],
                        max_new_tokens=sampling.max_tokens,
                        temperature=sampling.temperature,
                        top_p=sampling.top_p,
                        stop=sampling.stop,
                        seed=(sampling.seed or 0) + start,
                        add_special_tokens=not chat,
                    )
                except (RuntimeError, torch.OutOfMemoryError) as err:
                    if not _is_oom(err) or size == 1:
                        raise
                    if self.device.startswith("cuda"):
                        torch.cuda.empty_cache()
                    size = max(1, size // 2)
                    continue
                for (req, index, text), o in zip(chunk, outs, strict=True):
                    emit(
                        Result(
                            req.request_id,
                            index,
                            o.text,
                            o.finish_reason,
                            o.prompt_tokens,
                            o.completion_tokens,
                            prompt_text=text,
                        )
                    )
                start += len(chunk)
        return [out[(r.request_id, i)] for r in requests for i in range(r.sampling.n)]
