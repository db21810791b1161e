"""Study configuration: pydantic models loaded from YAML, with errors a user can act on.

Every field is documented where it is declared (TRL's ``DPOConfig`` habit), with its
typical range. The embedded default study lives in ``prefdelta/data/configs/demo.yaml``.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from prefdelta.errors import UserError
from prefdelta.judge.dimensions import DIMENSIONS
from prefdelta.worlds.arith import ArithSpec
from prefdelta.zoo import ZooModelSpec


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ProblemSet(_Strict):
    """A seeded set of arith problems."""

    spec: ArithSpec = Field(default_factory=ArithSpec)
    n: int = Field(ge=1, description="number of problems")
    seed: int = 0


class SuiteConfig(_Strict):
    """An evaluation suite of the arith world; ``domain`` says in- or out-of-domain."""

    name: str
    domain: Literal["in", "out"]
    problems: ProblemSet


class WorldConfig(_Strict):
    """Problems of the offline world: for training the zoo, and for building pairs."""

    train: ProblemSet = Field(default_factory=lambda: ProblemSet(n=20000, seed=1))
    pairs: ProblemSet = Field(default_factory=lambda: ProblemSet(n=300, seed=2))
    tokenizer_vocab: int = Field(400, ge=280, le=50000, description="BPE vocabulary of the zoo tokenizer")


class GenerateConfig(_Strict):
    """Sampling for the pair traces. ``samples`` 1–8 per (generator, problem);
    ``temperature`` 0.6–1.0 gives diverse traces; 0 is greedy."""

    samples: int = Field(2, ge=1, le=64)
    temperature: float = Field(0.8, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    max_new_tokens: int = Field(96, ge=1)
    batch_size: int = Field(128, ge=1, description="prompts per forward batch")
    seed: int = 0


class JudgeConfig(_Strict):
    """Which judge scores the traces. ``oracle`` is exact in the arith world."""

    kind: Literal["oracle"] = "oracle"


class PairsConfig(_Strict):
    """How preference pairs are built.

    ``cross_generator``: chosen from a more capable generator (by measured accuracy),
    rejected from a less capable one, on the same problem. ``chosen``/``rejected`` name
    generator ids; empty means every ordered pair with a capability gap of at least
    ``min_gap``. ``per_problem`` caps the pairs per (generator pair, problem).
    """

    strategy: Literal["cross_generator"] = "cross_generator"
    chosen: list[str] = Field(default_factory=list)
    rejected: list[str] = Field(default_factory=list)
    min_gap: float = Field(0.0, ge=0.0, le=1.0, description="smallest capability gap (accuracy points / 100)")
    per_problem: int = Field(1, ge=1, le=64)
    seed: int = 0
    weights: dict[str, float] = Field(
        default_factory=lambda: dict.fromkeys(DIMENSIONS, 1.0),
        description="weights of the dimensions in delta_aggregate",
    )

    @model_validator(mode="after")
    def _known_dims(self) -> PairsConfig:
        unknown = [k for k in self.weights if k not in DIMENSIONS]
        if unknown:
            raise ValueError(
                f"unknown dimension {unknown[0]!r} in weights; expected one of {', '.join(DIMENSIONS)}"
            )
        return self


class SelectConfig(_Strict):
    """Which pairs to train on: the top ``fraction`` by ``key`` (a dimension's delta or
    ``aggregate``), and a random subset of the same size as the control. The reference
    study kept the top ~30% by step-coherence delta."""

    key: str = "step_coherence"
    fraction: float = Field(0.3, gt=0.0, le=1.0)
    seed: int = 0

    @model_validator(mode="after")
    def _known_key(self) -> SelectConfig:
        if self.key not in (*DIMENSIONS, "aggregate", "generator_gap"):
            raise ValueError(
                f"unknown key {self.key!r}; expected one of {', '.join(DIMENSIONS)}, aggregate, generator_gap"
            )
        return self


class TrainConfig(_Strict):
    """Preference training of the student (DPO, Rafailov et al. 2023).

    ``beta`` 0.05–0.5 (reference study 0.2); ``lr`` for tiny CPU models 1e-5–1e-3, for
    8B models ~5e-7; ``nll_weight`` 0–1 adds the RPO term on the chosen trace, which
    counters likelihood displacement on off-policy pairs.
    """

    algorithm: Literal["dpo"] = "dpo"
    student: str = Field(description="generator id of the model to train (also the reference)")
    selections: list[str] = Field(default_factory=lambda: ["top", "random", "all"])
    beta: float = Field(0.1, gt=0.0, le=10.0)
    lr: float = Field(1e-4, gt=0.0, lt=1.0)
    epochs: int = Field(2, ge=1, le=100)
    batch_size: int = Field(16, ge=1)
    nll_weight: float = Field(0.0, ge=0.0, le=10.0)
    seed: int = 0


class EvalConfig(_Strict):
    """Accuracy of every generator and every trained student on the suites (greedy)."""

    suites: list[SuiteConfig]
    max_new_tokens: int = Field(128, ge=1)
    batch_size: int = Field(128, ge=1)


class StudyConfig(_Strict):
    """A whole study: world, zoo, and one config section per stage."""

    name: str = "study"
    seed: int = 0
    threads: int = Field(
        2, ge=1, le=256, description="torch threads (set explicitly: shared machines are noisy)"
    )
    world: WorldConfig = Field(default_factory=WorldConfig)
    zoo: list[ZooModelSpec] = Field(min_length=2)
    generate: GenerateConfig = Field(default_factory=GenerateConfig)
    judge: JudgeConfig = Field(default_factory=JudgeConfig)
    pairs: PairsConfig = Field(default_factory=PairsConfig)
    select: SelectConfig = Field(default_factory=SelectConfig)
    train: TrainConfig
    eval: EvalConfig

    @model_validator(mode="after")
    def _ids_exist(self) -> StudyConfig:
        ids = [z.id for z in self.zoo] + [s for z in self.zoo for s in z.snapshots]
        dupes = {i for i in ids if ids.count(i) > 1}
        if dupes:
            raise ValueError(f"zoo ids must be unique; {sorted(dupes)[0]!r} appears twice")
        for field_name, names in (
            ("pairs.chosen", self.pairs.chosen),
            ("pairs.rejected", self.pairs.rejected),
            ("train.student", [self.train.student]),
        ):
            for name in names:
                if name not in ids:
                    raise ValueError(f"{field_name} names {name!r}, which is not a zoo id ({', '.join(ids)})")
        return self


def _format_validation_error(err: ValidationError, source: str) -> str:
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first["loc"]) or "(top level)"
    msg = first["msg"]
    got = first.get("input")
    got_s = "" if isinstance(got, dict) or got is None else f" (got {got!r})"
    more = f"; {len(err.errors()) - 1} more error(s)" if len(err.errors()) > 1 else ""
    return f"{source}: field '{loc}': {msg}{got_s}{more}"


def parse_config(data: Any, source: str, model: type[BaseModel] = StudyConfig) -> Any:
    """Validate ``data`` into ``model``; a :class:`UserError` names the field on failure."""
    if not isinstance(data, dict):
        raise UserError(f"{source}: expected a mapping of config sections at the top level")
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise UserError(_format_validation_error(err, source)) from None


def load_config(path: str | Path | None = None) -> StudyConfig:
    """Load a study config from YAML; ``None`` loads the embedded default study."""
    if path is None:
        text = resources.files("prefdelta").joinpath("data/configs/demo.yaml").read_text()
        source = "embedded demo.yaml"
    else:
        p = Path(path)
        if not p.is_file():
            raise UserError(f"config file {p} not found")
        text = p.read_text()
        source = str(p)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise UserError(f"{source}:{where} is not valid YAML: {getattr(err, 'problem', err)}") from None
    return parse_config(data, source)
