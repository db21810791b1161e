"""Build the backend a :class:`~prefdelta.settings.generate.GeneratorSpec` names."""

from __future__ import annotations

from typing import Any

from prefdelta.generate.base import Backend
from prefdelta.generate.config import GeneratorSpec


def make_backend(spec: GeneratorSpec) -> Backend:
    """An ``hf``, ``vllm`` or ``openai`` backend for ``spec`` (vLLM imported only here)."""
    if spec.backend == "hf":
        from prefdelta.generate.hf import HFBackend

        o = spec.hf
        return HFBackend(
            spec.model,
            device=o.device,
            dtype=o.dtype,
            batch_size=o.batch_size,
            max_batch_size=o.max_batch_size,
        )
    if spec.backend == "vllm":
        from prefdelta.generate.vllm import VLLMBackend

        v = spec.vllm
        return VLLMBackend(
            spec.model,
            tensor_parallel_size=v.tensor_parallel_size,
            data_parallel_size=v.data_parallel_size,
            dtype=v.dtype,
            gpu_memory_utilization=v.gpu_memory_utilization,
            max_model_len=v.max_model_len,
            llm_kwargs=v.llm_kwargs,
        )
    from prefdelta.generate.openai import OpenAIBackend

    o = spec.openai
    assert o is not None  # validated by GeneratorSpec
    return OpenAIBackend(
        o.base_urls,
        spec.model,
        api_key_env=o.api_key_env,
        max_in_flight=o.max_in_flight,
        timeout_s=o.timeout_s,
        max_retries=o.max_retries,
        backoff_base_s=o.backoff_base_s,
        backoff_max_s=o.backoff_max_s,
        supports_n=o.supports_n,
        extra_body=o.extra_body,
    )


def has_chat_template(backend: Any) -> bool:
    """Whether prompts for ``backend`` should be chat messages under ``prompt_style: auto``.

    ``openai``: yes (servers apply the model's chat template; base models are served
    for completions — set ``prompt_style: completion``). ``hf``/``vllm``: when the
    tokenizer has a chat template.
    """
    if getattr(backend, "name", "") == "openai":
        return True
    tokenizer = getattr(backend, "tokenizer", None)
    if tokenizer is None and hasattr(backend, "llm"):
        tokenizer = backend.llm.get_tokenizer()
    return bool(getattr(tokenizer, "chat_template", None))
