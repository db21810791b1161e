"""Config of the generate stage and of external generators (``generators:`` lists).

A generator is a model plus the backend that runs it::

    generators:
      - id: qwen-7b
        family: qwen2.5
        params: 7.6e9
        backend: vllm                 # hf | vllm | openai
        model: Qwen/Qwen2.5-7B-Instruct
        vllm: {tensor_parallel_size: 2}
      - id: served-70b
        family: llama3.1
        params: 70e9
        backend: openai
        model: meta-llama/Llama-3.1-70B-Instruct
        openai: {base_urls: ["http://gpu1:8000/v1", "http://gpu2:8000/v1"], api_key_env: MY_KEY}
        sampling: {temperature: 0.6}  # overrides the run's sampling for this generator

The API key itself never appears in a config: ``api_key_env`` names the environment
variable that holds it.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SamplingSpec(_Strict):
    """Sampling of one run: ``samples`` traces per problem (1–16), ``temperature`` 0 (greedy)
    to ~1.0, ``top_p`` 0.9–1.0, ``max_tokens`` the completion budget (set it: vLLM's
    default is 16), ``stop`` extra stop strings (the template's are added), ``seed``."""

    samples: int = Field(1, ge=1, le=256, description="completions per problem, 1-16")
    temperature: float = Field(0.7, ge=0.0, le=2.0, description="0 = greedy; 0.6-1.0 for diverse samples")
    top_p: float = Field(1.0, gt=0.0, le=1.0, description="nucleus mass, 0.9-1.0")
    max_tokens: int = Field(
        512, ge=1, description="completion budget in tokens (set it: vLLM's default is 16)"
    )
    stop: list[str] = Field(default_factory=list, description="extra stop strings (the template's are added)")
    seed: int = Field(0, description="sampling seed")


class GenerateConfig(SamplingSpec):
    """The ``generate:`` section: sampling of the pair traces (every generator; a generator's
    ``sampling`` overrides it). ``samples`` 1–8 per (generator, problem); ``temperature``
    0.6–1.0 gives diverse traces; 0 is greedy."""

    samples: int = Field(2, ge=1, le=256, description="traces per (generator, problem), 1-8")
    temperature: float = Field(0.8, ge=0.0, le=2.0, description="0.6-1.0 for diverse traces; 0 = greedy")
    batch_size: int = Field(
        128, ge=1, description="hf backend: prompts per batch when a generator sets no hf.batch_size"
    )
    flush_every: int = Field(
        256, ge=1, description="results per shard written: the granularity of resume after a kill"
    )
    workers: int = Field(
        1,
        ge=1,
        le=64,
        description="processes sampling local (hf and zoo) generators side by side, one torch thread "
        "each: the cores on a CPU, 1 on a GPU (the device is shared); the traces do not depend on it",
    )
    max_error_rate: float = Field(
        0.2,
        ge=0.0,
        le=1.0,
        description="largest share of a generator's samples that may end without a trace (errors "
        "after the backend's retries); above it the stage fails (exit 2) after writing its rows, "
        "naming the generator and its commonest errors",
    )

    def sampling(self) -> SamplingSpec:
        return SamplingSpec.model_validate(self.model_dump(include=set(SamplingSpec.model_fields)))


class HFOptions(_Strict):
    """``backend: hf``: ``device`` auto|cpu|cuda[:i]|mps, ``dtype`` auto|float32|bfloat16|float16,
    ``batch_size`` sequences per batch (None: sized to free memory)."""

    device: str = Field("auto", description="auto (cuda, then mps, then cpu), cpu, cuda[:i] or mps")
    dtype: str = Field("auto", description="auto (bf16/fp16 on accelerators, fp32 on CPU), float32, bfloat16")
    batch_size: int | None = Field(
        None, ge=1, description="sequences per batch; None sizes it to free memory"
    )
    max_batch_size: int = Field(256, ge=1, description="cap of the memory-sized batch, 64-512")


class VLLMOptions(_Strict):
    """``backend: vllm``: GPUs per model, memory share (0.5–0.95), context cap, extra ``LLM`` args."""

    tensor_parallel_size: int = Field(1, ge=1, description="GPUs per model replica (1, 2, 4, 8)")
    data_parallel_size: int = Field(
        1, ge=1, description="model replicas (each on tensor_parallel_size GPUs) sharing the requests"
    )
    dtype: str = Field("auto", description="auto, bfloat16, float16")
    gpu_memory_utilization: float = Field(
        0.9, gt=0.0, le=1.0, description="share of GPU memory vLLM takes, 0.5-0.95"
    )
    max_model_len: int | None = Field(None, ge=1, description="context cap (saves KV-cache memory)")
    llm_kwargs: dict[str, Any] = Field(default_factory=dict, description="further vllm.LLM arguments")


class OpenAIOptions(_Strict):
    """``backend: openai``: one or more ``/v1`` base URLs (round-robin), the *name* of the
    environment variable with the API key, requests in flight (16–256 for vLLM/SGLang,
    4–16 for ``transformers serve``), per-attempt timeout, retries (0–8) and backoff."""

    base_urls: list[str] = Field(
        default_factory=list, description="/v1 base URLs, round-robin (empty with a server:)"
    )
    api_key_env: str | None = Field(None, description="name of the environment variable holding the API key")
    max_in_flight: int = Field(
        32, ge=1, le=4096, description="requests in flight: vLLM 16-256, transformers serve 4-16"
    )
    timeout_s: float = Field(300.0, gt=0, description="per-attempt timeout in seconds")
    max_retries: int = Field(4, ge=0, le=20, description="retries of a failed request, 0-8")
    backoff_base_s: float = Field(0.5, ge=0, description="first retry delay (doubles each time)")
    backoff_max_s: float = Field(30.0, ge=0, description="longest retry delay")
    supports_n: bool | None = Field(None, description="None: send n, fall back when the server ignores it")
    extra_body: dict[str, Any] = Field(default_factory=dict, description="extra JSON fields of every request")

    @model_validator(mode="after")
    def _no_inline_key(self) -> OpenAIOptions:
        for key in self.extra_body:
            if key.lower() in {"api_key", "authorization", "key", "token"}:
                raise ValueError(
                    f"extra_body.{key}: put secrets in an environment variable named by api_key_env"
                )
        return self


class GeneratorSpec(_Strict):
    """One generator: identity (id, family, parameter count), backend and model, prompting.

    ``backend``: ``zoo`` (a model of the ``zoo:`` section, run in-process; the default when
    no ``model`` is given), ``hf`` (a folder or hub id, in-process), ``vllm`` (GPU, tensor /
    data parallel) or ``openai`` (any OpenAI-compatible endpoint: ``openai.base_urls``, or
    ``server``, a server of the ``servers:`` section that the study starts). ``family`` and
    ``params`` label the generator-level tables (a zoo model's come from the zoo).

    ``prompt_style``: ``chat`` sends chat messages (the tokenizer's / server's chat
    template formats them), ``completion`` a plain prompt, ``auto`` uses chat when the
    model has a chat template (always for ``openai``). ``template``: a built-in template
    name or a YAML path; ``None`` picks the problem source's default.
    """

    id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9._-]+$", description="generator id in every table")
    family: str = Field("", description="model family (llama, qwen2, gpt2, …) for the generator-level tables")
    params: float | None = Field(None, ge=0, description="parameter count (e.g. 7.6e9)")
    backend: Literal["zoo", "hf", "vllm", "openai"] | None = Field(
        None, description="zoo, hf, vllm or openai [default: zoo without a model, else hf]"
    )
    model: str | None = Field(
        None, min_length=1, description="folder, hub id, or the served model name [zoo: the zoo id]"
    )
    server: str | None = Field(None, description="openai backend: a server of the servers: section")
    prompt_style: Literal["auto", "chat", "completion"] = Field(
        "auto", description="chat messages, a plain prompt, or chat when the model has a chat template"
    )
    template: str | None = Field(
        None, description="prompt template name or YAML path [default: the source's]"
    )
    sampling: dict[str, Any] = Field(default_factory=dict, description="overrides of the run's sampling")
    hf: HFOptions = Field(default_factory=HFOptions, description="options of the hf (and zoo) backend")
    vllm: VLLMOptions = Field(default_factory=VLLMOptions, description="options of the vllm backend")
    openai: OpenAIOptions | None = Field(None, description="options of the openai backend")
    max_error_rate: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description="this generator's own limit on its share of samples without a trace "
        "[default: generate.max_error_rate]",
    )

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        return {"id": data} if isinstance(data, str) else data

    @model_validator(mode="after")
    def _backend_options(self) -> GeneratorSpec:
        if self.backend is None:
            self.backend = "openai" if self.server else ("zoo" if self.model is None else "hf")
        if self.backend == "zoo" and self.model is not None:
            raise ValueError(
                f"generator '{self.id}': a zoo generator takes no model (it is zoo model {self.id!r})"
            )
        if self.backend in ("hf", "vllm") and self.model is None:
            raise ValueError(
                f"generator '{self.id}': backend {self.backend} needs model (a folder or hub id)"
            )
        if self.backend == "openai" and self.server is None and not (self.openai and self.openai.base_urls):
            raise ValueError(
                f"generator '{self.id}': backend openai needs openai.base_urls or server (a servers: entry)"
            )
        if self.server is not None and self.backend != "openai":
            raise ValueError(f"generator '{self.id}': server is for backend openai, not {self.backend}")
        unknown = set(self.sampling) - set(SamplingSpec.model_fields)
        if unknown:
            raise ValueError(f"generator '{self.id}': unknown sampling field '{sorted(unknown)[0]}'")
        return self

    def sampling_for(self, run: SamplingSpec) -> SamplingSpec:
        """The run's sampling with this generator's overrides applied (validated)."""
        return SamplingSpec.model_validate({**run.model_dump(), **self.sampling})


class GeneratorsFile(_Strict):
    """A ``--generators`` YAML: the generators, and the run's default sampling."""

    sampling: SamplingSpec = Field(default_factory=SamplingSpec)
    generators: list[GeneratorSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> GeneratorsFile:
        ids = [g.id for g in self.generators]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"generator ids must be unique; '{dupes[0]}' appears twice")
        return self
