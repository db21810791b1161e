"""The ``vllm`` backend: offline ``vllm.LLM`` on the local GPUs (optional extra ``[vllm]``).

Why two explicit settings: ``SamplingParams.max_tokens`` defaults to 16, and ``LLM``
applies the model's ``generation_config.json`` defaults (temperature, top_p, …) unless
told ``generation_config="vllm"``; either silently changes what a study samples. Both are
set here from :class:`~prefdelta.generate.base.Sampling`, every time.

vLLM is imported only when a :class:`VLLMBackend` is built, so the rest of prefdelta
works without it; without it, building one raises a
:class:`~prefdelta.errors.MissingDependency` naming the extra to install.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from prefdelta.errors import MissingDependency, UserError
from prefdelta.generate.base import Request, Result, Sampling, check_unique_ids


def import_vllm() -> Any:
    """The ``vllm`` module, or a :class:`MissingDependency` error."""
    try:
        import vllm
    except ImportError as err:
        raise MissingDependency("vllm", "vllm", "the vllm backend (backend: vllm)") from err
    return vllm


def sampling_params(vllm: Any, s: Sampling) -> Any:
    """``vllm.SamplingParams`` of ``s``: n, temperature, top_p, seed, stop and max_tokens, all explicit."""
    return vllm.SamplingParams(
        n=s.n,
        temperature=s.temperature,
        top_p=s.top_p,
        seed=s.seed,
        max_tokens=s.max_tokens,
        stop=list(s.stop) or None,
    )


class VLLMBackend:
    """:class:`~prefdelta.generate.base.Backend` over an in-process ``vllm.LLM``.

    Args:
        model: a model folder or hub id.
        tensor_parallel_size: GPUs one model is split over (1, 2, 4, 8).
        dtype: ``"auto"``, ``"bfloat16"``, ``"float16"`` …
        gpu_memory_utilization: share of GPU memory vLLM may take (0.5–0.95).
        max_model_len: context length cap (prompt + max_tokens); ``None``: the model's.
        seed: engine seed (per-request seeds come from ``Sampling.seed``).
        llm_kwargs: further ``vllm.LLM`` arguments (e.g. ``{"enable_prefix_caching": True}``).
    """

    name = "vllm"
    seeded_per_request = True  # each request carries its own seed

    def __init__(
        self,
        model: str,
        *,
        tensor_parallel_size: int = 1,
        data_parallel_size: int = 1,
        dtype: str = "auto",
        gpu_memory_utilization: float = 0.9,
        max_model_len: int | None = None,
        seed: int = 0,
        llm_kwargs: dict[str, Any] | None = None,
    ) -> None:
        self._vllm = import_vllm()
        if tensor_parallel_size < 1:
            raise UserError(f"vllm backend: tensor_parallel_size must be >= 1, got {tensor_parallel_size}")
        self.model = model
        self.tensor_parallel_size = tensor_parallel_size
        kwargs: dict[str, Any] = {
            "model": model,
            "tensor_parallel_size": tensor_parallel_size,
            "dtype": dtype,
            "gpu_memory_utilization": gpu_memory_utilization,
            "seed": seed,
            "generation_config": "vllm",  # ignore the model's generation_config.json defaults
        }
        if max_model_len is not None:
            kwargs["max_model_len"] = max_model_len
        if data_parallel_size > 1:  # replicas of the model, each on tensor_parallel_size GPUs
            kwargs["data_parallel_size"] = data_parallel_size
        kwargs.update(llm_kwargs or {})
        self.llm = self._vllm.LLM(**kwargs)

    def __repr__(self) -> str:
        return f"VLLMBackend(model={self.model!r}, tensor_parallel_size={self.tensor_parallel_size})"

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, "model": self.model, "tensor_parallel_size": self.tensor_parallel_size}

    def generate(
        self, requests: Sequence[Request], on_result: Callable[[Result], None] | None = None
    ) -> list[Result]:
        """``sampling.n`` results per request; prompts via ``LLM.generate``, messages via ``LLM.chat``."""
        check_unique_ids(requests)
        out: list[Result] = []
        prompts = [r for r in requests if r.prompt is not None]
        chats = [r for r in requests if r.messages is not None]
        if prompts:
            outputs = self.llm.generate(
                [r.prompt for r in prompts],
                [sampling_params(self._vllm, r.sampling) for r in prompts],
                use_tqdm=False,
            )
            out.extend(self._results(prompts, outputs, on_result))
        if chats:
            outputs = self.llm.chat(
                [[dict(m) for m in r.messages or ()] for r in chats],
                [sampling_params(self._vllm, r.sampling) for r in chats],
                use_tqdm=False,
            )
            out.extend(self._results(chats, outputs, on_result))
        by_key = {(r.request_id, r.index): r for r in out}
        return [by_key[(q.request_id, i)] for q in requests for i in range(q.sampling.n)]

    @staticmethod
    def _results(
        requests: Sequence[Request], outputs: Sequence[Any], on_result: Callable[[Result], None] | None
    ) -> list[Result]:
        results = []
        for req, output in zip(requests, outputs, strict=True):
            n_prompt = len(output.prompt_token_ids or [])
            # LLM.chat reports the chat template's rendering here; LLM.generate the prompt itself
            rendered = getattr(output, "prompt", None)
            prompt_text = rendered if isinstance(rendered, str) else req.prompt
            completions = list(output.outputs)
            for i in range(req.sampling.n):
                if i < len(completions):
                    c = completions[i]
                    reason = c.finish_reason if c.finish_reason in ("stop", "length") else "stop"
                    r = Result(
                        req.request_id,
                        i,
                        c.text,
                        reason,
                        n_prompt,
                        len(c.token_ids),
                        prompt_text=prompt_text,
                    )
                else:
                    r = Result(
                        req.request_id, i, "", "error", n_prompt, error="vllm returned fewer samples than n"
                    )
                results.append(r)
                if on_result is not None:
                    on_result(r)
        return results


__all__ = ["VLLMBackend", "import_vllm", "sampling_params"]
