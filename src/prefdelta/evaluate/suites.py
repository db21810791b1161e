"""Evaluation suites as data: YAML files naming benchmarks, sampling, metric and prompt.

A suite groups benchmarks of one domain (in-domain math, out-of-domain STEM, code);
its score is the macro mean of its benchmarks (each benchmark counts once, whatever its
size). Built-in suites live in ``prefdelta/data/suites/<name>.yaml``; a user passes a
path to their own file with the same schema (lm-evaluation-harness's habit: tasks are
data, resolved by name, added without touching code).

Schema (every field documented on the models below)::

    name: math_id
    domain: in                 # "in" or "out"
    defaults: {samples: 1, metric: accuracy, sampling: {...}, template: "..."}
    benchmarks:
      - {name: gsm8k, source: gsm8k, split: test, grader: gsm8k}
      - {name: aime24, source: aime24, grader: boxed, metric: avg@k, samples: 8, ...}
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from prefdelta.configio import parse_config, read_text_file, read_yaml
from prefdelta.errors import UserError
from prefdelta.generate.base import Sampling

Grader = Literal["arith", "gsm8k", "boxed", "choice", "humaneval"]
Metric = Literal["accuracy", "avg@k", "pass@k"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SamplingSpec(_Strict):
    """Sampling of every request of a benchmark (maps onto :class:`~prefdelta.generate.base.Sampling`)."""

    temperature: float = Field(0.0, ge=0.0, le=2.0, description="0 = greedy; 0.6–1.0 for avg@k / pass@k")
    top_p: float = Field(1.0, gt=0.0, le=1.0, description="nucleus mass; 0.95 is common with sampling")
    max_tokens: int = Field(512, ge=1, description="generation budget; 512–1024 for GSM8K, 2k–32k for AIME")
    stop: list[str] = Field(default_factory=list, description="stop strings cut from the text")
    seed: int = Field(0, description="sampling seed")

    def to_sampling(self, n: int) -> Sampling:
        return Sampling(self.temperature, self.top_p, self.max_tokens, tuple(self.stop), self.seed, n)


class BenchmarkSpec(_Strict):
    """One benchmark of a suite. Unset fields take the suite's ``defaults``."""

    name: str = Field(description="benchmark name in the evals table")
    source: str = Field(description="problem loader: prefdelta.sources.<source> (arith, gsm8k, math500, …)")
    split: str = Field("test", description="split to read (arith: a label in the problem ids)")
    options: dict[str, Any] = Field(
        default_factory=dict, description="arguments of the source's loader (arith: n, seed, spec)"
    )
    grader: Grader | None = Field(
        None,
        description="arith, gsm8k (#### N), boxed (\\boxed{}), choice (letter), humaneval (sandbox) "
        "[default: the source's]",
    )
    metric: Metric | None = Field(
        None, description="accuracy (greedy, 1 sample), avg@k (mean over k samples), pass@k (code)"
    )
    samples: int | None = Field(
        None, ge=1, description="samples per problem: 1 greedy, 4–64 for avg@k/pass@k"
    )
    k: list[int] = Field(default_factory=lambda: [1], description="the k of pass@k (each ≤ samples)")
    sampling: SamplingSpec | None = Field(None, description="sampling of the requests [default: the suite's]")
    template: str | None = Field(None, description="prompt template with {prompt}; zero-shot CoT")
    limit: int | None = Field(None, ge=1, description="first N problems only (smoke runs)")


class SuiteDefaults(_Strict):
    """Values a benchmark inherits when it does not set them."""

    metric: Metric = "accuracy"
    samples: int = Field(1, ge=1)
    sampling: SamplingSpec = Field(default_factory=SamplingSpec)
    template: str = "{prompt}"


class SuiteSpec(_Strict):
    """A named group of benchmarks of one domain; the score is their macro mean."""

    name: str
    domain: Literal["in", "out"]
    description: str = ""
    defaults: SuiteDefaults = Field(default_factory=SuiteDefaults)
    benchmarks: list[BenchmarkSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _fill_and_check(self) -> SuiteSpec:
        names = [b.name for b in self.benchmarks]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"benchmark names must be unique; {dupes[0]!r} appears twice")
        d = self.defaults
        from prefdelta.sources.registry import check_split, source_info

        for b in self.benchmarks:
            try:
                info = source_info(b.source, f"benchmarks.{self.benchmarks.index(b)}.source")
                check_split(b.source, b.split, f"benchmarks.{self.benchmarks.index(b)}.split")
            except UserError as err:
                raise ValueError(str(err)) from None
            b.grader = b.grader or info.grader  # type: ignore[assignment]
            b.metric = b.metric or d.metric
            b.samples = b.samples or d.samples
            b.sampling = b.sampling or d.sampling
            b.template = b.template if b.template is not None else d.template
            if "{prompt}" not in b.template:
                raise ValueError(f"benchmark {b.name!r}: template must contain {{prompt}}")
            if b.metric == "pass@k" and b.grader != "humaneval":
                raise ValueError(f"benchmark {b.name!r}: pass@k needs the humaneval grader")
            if b.metric == "pass@k" and max(b.k) > b.samples:
                raise ValueError(f"benchmark {b.name!r}: pass@{max(b.k)} needs samples >= {max(b.k)}")
            if b.metric == "accuracy" and b.samples != 1:
                raise ValueError(f"benchmark {b.name!r}: accuracy takes 1 sample; use avg@k for more")
        return self


def builtin_suites() -> list[str]:
    """Names of the suites shipped in ``prefdelta/data/suites``."""
    folder = resources.files("prefdelta").joinpath("data/suites")
    return sorted(p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml"))


def load_suite(name_or_path: str | Path) -> SuiteSpec:
    """A built-in suite by name, or a suite YAML file by path."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise UserError(f"suite file {path} not found")
        text, source = read_text_file(path, "suite"), str(path)
    else:
        name = str(name_or_path)
        if name not in builtin_suites():
            raise UserError(
                f"unknown suite {name!r}; built in: {', '.join(builtin_suites())} (or a YAML path)"
            )
        text = resources.files("prefdelta").joinpath(f"data/suites/{name}.yaml").read_text()
        source = f"built-in suite {name}.yaml"
    return parse_config(read_yaml(text, source), source, SuiteSpec)
