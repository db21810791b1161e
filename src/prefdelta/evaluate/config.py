"""Config of the eval stage (the ``eval:`` section): which models, on which suites.

Suites are listed in one place, whatever they run on::

    eval:
      suites:
        - math_id                                   # a built-in suite (or a suite YAML path)
        - {suite: stem_ood, domain: out}
        - {name: arith_in_domain, domain: in, source: arith, n: 500, seed: 3}
        - {name: gsm8k_slice, domain: in, source: gsm8k, n: 50}   # one benchmark, source defaults
        - {lm_eval: gsm8k, domain: in}              # an lm-evaluation-harness task

Every suite except the lm-eval tasks runs through the same runner
(:mod:`prefdelta.evaluate.runner`): prompts → backend → the source's exact grader →
accuracy / avg@k / pass@k with bootstrap 95% intervals.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from prefdelta.errors import UserError
from prefdelta.evaluate.suites import BenchmarkSpec, Grader, Metric, SamplingSpec, SuiteSpec


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SuiteEntry(_Strict):
    """One suite: exactly one of ``suite`` (a built-in name or YAML path), ``benchmarks``
    (an inline suite), ``source`` (a one-benchmark suite with the source's defaults) or
    ``lm_eval`` (an lm-evaluation-harness task)."""

    suite: str | None = Field(None, description="built-in suite (math_id, stem_ood, code_ood) or a YAML path")
    lm_eval: str | None = Field(None, description="lm-eval task (gsm8k, math500, mmlu_stem, humaneval, …)")
    name: str | None = Field(None, description="suite name in the evals table [default: from the suite]")
    domain: Literal["in", "out"] | None = Field(
        None, description="in- or out-of-domain [default: the suite's]"
    )
    benchmarks: list[BenchmarkSpec] | None = Field(None, description="an inline suite's benchmarks")
    source: str | None = Field(None, description="one-benchmark suite: the problem source (arith, gsm8k, …)")
    split: str = Field("test", description="one-benchmark suite: split (arith: a label in the ids)")
    n: int | None = Field(None, ge=1, description="problems: arith generates n; others take the first n")
    seed: int = Field(0, description="arith: the world's seed")
    spec: dict[str, Any] | None = Field(None, description="arith: knobs of the world (distractors, …)")
    grader: Grader | None = Field(None, description="[default: the source's grader]")
    metric: Metric | None = Field(None, description="accuracy (default), avg@k or pass@k")
    samples: int | None = Field(None, ge=1, description="samples per problem (avg@k / pass@k)")
    k: list[int] | None = Field(None, description="the k of pass@k")
    sampling: SamplingSpec | None = Field(None, description="sampling of the requests [default: greedy]")
    template: str | None = Field(None, description="prompt template with {prompt} [default: {prompt}]")

    @model_validator(mode="before")
    @classmethod
    def _name_only(cls, data: Any) -> Any:
        return {"suite": data} if isinstance(data, str) else data

    @model_validator(mode="after")
    def _one_kind(self) -> SuiteEntry:
        kinds = [k for k in ("suite", "benchmarks", "source", "lm_eval") if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError("give exactly one of suite, benchmarks, source or lm_eval")
        if self.benchmarks is not None and (self.name is None or self.domain is None):
            raise ValueError("an inline suite (benchmarks:) needs a name and a domain")
        if self.suite is not None:
            try:
                self.resolve()
            except UserError as err:
                raise ValueError(f"suite: {err}") from None
        if self.source is not None:
            if self.source == "arith" and self.n is None:
                raise ValueError("n: an arith suite generates its problems; say how many")
            if self.spec is not None and self.source != "arith":
                raise ValueError("spec: only the arith world takes a spec")
            try:
                self.resolve()  # the source, split, grader and metric checks of SuiteSpec
            except ValidationError as err:  # report it on this entry's own fields
                first = err.errors()[0]
                msg = first["msg"].removeprefix("Value error, ")
                field = str(first["loc"][-1]) if first["loc"] else ""
                if ": " in msg and msg.split(": ", 1)[0].rsplit(".", 1)[-1].isidentifier():
                    field, msg = msg.split(": ", 1)
                    field = field.rsplit(".", 1)[-1]
                raise ValueError(f"{field}: {msg}" if field else msg) from None
        if self.lm_eval is not None and self.domain is None:
            from prefdelta.evaluate.lmeval import SHIPPED

            if self.lm_eval not in SHIPPED:
                raise ValueError(f"domain: say whether lm-eval task {self.lm_eval!r} is in or out of domain")
        return self

    @property
    def label(self) -> str:
        if self.name:
            return self.name
        if self.lm_eval:
            return f"lm-eval:{self.lm_eval}"
        return self.suite or self.source or "suite"

    def resolve(self) -> SuiteSpec:
        """The :class:`SuiteSpec` this entry stands for (not for ``lm_eval`` entries)."""
        if self.suite is not None:
            from prefdelta.evaluate.suites import load_suite

            spec = load_suite(self.suite)
            update = {k: v for k, v in (("name", self.name), ("domain", self.domain)) if v is not None}
            return spec.model_copy(update=update) if update else spec
        if self.benchmarks is not None:
            return SuiteSpec(name=self.name, domain=self.domain, benchmarks=self.benchmarks)  # type: ignore[arg-type]
        assert self.source is not None
        options: dict[str, Any] = {}
        limit = self.n
        if self.source == "arith":
            options = {"n": self.n, "seed": self.seed, "spec": self.spec or {}}
            limit = None
        bench: dict[str, Any] = {
            "name": self.name or self.source,
            "source": self.source,
            "split": self.split,
            "options": options,
            "grader": self.grader,
            "metric": self.metric,
            "samples": self.samples,
            "k": self.k or [1],
            "sampling": self.sampling,
            "template": self.template,
            "limit": limit,
        }
        return SuiteSpec(
            name=self.name or self.source,
            domain=self.domain or "in",
            benchmarks=[BenchmarkSpec(**{k: v for k, v in bench.items() if v is not None})],
        )


class EvalModel(_Strict):
    """A model to evaluate besides the study's own (a baseline, a checkpoint from elsewhere)."""

    id: str = Field(min_length=1, description="model_id in the evals table")
    model: str = Field(min_length=1, description="folder, LoRA adapter folder, hub id or served model name")
    backend: Literal["hf", "vllm", "openai"] = Field("hf", description="hf, vllm or openai")
    base: str | None = Field(None, description="base model of a LoRA adapter [default: from the adapter]")
    url: str | None = Field(None, description="openai backend: the server's /v1 base URL")
    server: str | None = Field(None, description="openai backend: a server of the servers: section")


class LmEvalServed(_Strict):
    """How lm-eval reaches a model behind an OpenAI-compatible server (backend ``openai``):
    its ``local-completions`` or ``local-chat-completions`` model, with the model's URL as
    ``base_url`` and its name as ``model``. Prompts always go as text (``transformers
    serve`` takes no token ids), one per request, ``num_concurrent`` at once."""

    api: Literal["completions", "chat-completions"] = Field(
        "completions",
        description="completions: the task's prompt as is (/v1/completions); chat-completions: "
        "as a user message, the server applies the model's chat template (/v1/chat/completions)",
    )
    tokenizer: str | None = Field(
        None,
        description="local tokenizer folder for lm-eval's huggingface tokenizer backend (the EOS "
        "stop string, context lengths of log-likelihood tasks) [default: the served model name "
        "when it is a local folder, else none]; never loaded from a hub",
    )
    num_concurrent: int = Field(
        1, ge=1, le=256, description="requests in flight: 1-4 for transformers serve, 16-64 for vLLM"
    )
    max_retries: int = Field(3, ge=1, le=10, description="attempts per request before lm-eval gives up")
    timeout_s: int = Field(300, ge=1, description="seconds per request, generation included")


class EvalConfig(_Strict):
    """Accuracy of the study's models (every generator, the student, every trained run)
    and of ``models`` on every suite, with bootstrap 95% intervals."""

    suites: list[SuiteEntry] = Field(default_factory=list, description="suites (see the module docstring)")
    include: list[Literal["generators", "student", "runs"]] = Field(
        default_factory=lambda: ["generators", "student", "runs"],
        description="which of the study's models are evaluated",
    )
    models: list[EvalModel] = Field(default_factory=list, description="further models to evaluate")
    prompt_style: Literal["auto", "chat", "completion"] = Field(
        "auto", description="chat messages for models with a chat template (auto), always, or never"
    )
    batch_size: int = Field(
        128, ge=1, description="hf backend: prompts per generation batch (32-256 on a CPU)"
    )
    max_tokens: int | None = Field(None, ge=1, description="override every benchmark's generation budget")
    samples: int | None = Field(None, ge=1, description="override every benchmark's samples per problem")
    temperature: float | None = Field(
        None, ge=0.0, le=2.0, description="override every benchmark's temperature"
    )
    limit: int | None = Field(None, ge=1, description="first N problems of each benchmark (smoke runs)")
    sandbox_workers: int = Field(2, ge=1, le=256, description="code sandboxes / grading processes at once")
    workers: int = Field(
        1,
        ge=1,
        le=64,
        description="local models evaluated at once in worker processes, one torch thread each: "
        "2 for tiny models on a 2-core CPU; 1 on a GPU",
    )
    lm_eval_batch_size: int = Field(8, ge=1, description="lm-eval tasks: batch size of its hf model")
    lm_eval_served: LmEvalServed = Field(
        default_factory=LmEvalServed,
        description="lm-eval tasks on a served model (backend openai): lm-eval's API model settings",
    )
    lm_eval_output: bool = Field(
        True,
        description="also write lm-eval's own results JSON (its --output_path) to "
        "<workspace>/lm-eval/<model_id>/, beside the evals rows",
    )
    lm_eval_log_samples: bool = Field(
        True, description="with lm_eval_output, also lm-eval's samples_<task>_<date>.jsonl (--log_samples)"
    )

    @model_validator(mode="after")
    def _unique(self) -> EvalConfig:
        names = [s.label for s in self.suites]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"suites: two suites are named {dupes[0]!r}; give one a name")
        return self

    def benchmark_overrides(self, bench: BenchmarkSpec) -> BenchmarkSpec:
        """``bench`` with this section's sampling overrides applied."""
        sampling = bench.sampling or SamplingSpec()
        s_update = {
            k: v
            for k, v in (("max_tokens", self.max_tokens), ("temperature", self.temperature))
            if v is not None
        }
        update: dict[str, Any] = {}
        if s_update:
            update["sampling"] = sampling.model_copy(update=s_update)
        if self.samples is not None and bench.metric != "accuracy":
            update["samples"] = self.samples
        return bench.model_copy(update=update) if update else bench
