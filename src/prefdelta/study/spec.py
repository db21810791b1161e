"""The study spec: one YAML whose sections name, per stage, an offline-world component or a
real one. The same spec shape runs the arith world on a laptop and real models on GPUs;
only the model sections change.

Sections (each owned by its stage; every field documented where it is declared)::

    name, seed, threads, data_dir
    problems:   the pair problems (arith world, built-in sources, files, hub datasets)
    zoo:        tiny models trained here on the arith world (optional)
    servers:    local OpenAI-compatible servers the study starts and stops (optional)
    generators: zoo ids and/or models (hf folder / hub id, vllm, openai endpoint)
    generate:   sampling of the pair traces
    judge:      oracle / calc / llm judges, one named for the deltas
    pairs, select
    student:    the policy (zoo id, folder or hub id), full fine-tune or LoRA
    train:      DPO/KTO hyper-parameters, seeds, variants, launcher
    eval:       suites (arith, benchmarks, lm-eval tasks), in- or out-of-domain

Strings may use ``${VAR}`` and ``${VAR:-default}`` (environment variables). Templates
shipped with the package are listed by ``prefdelta templates``.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from prefdelta.configio import apply_overrides, expand_env, parse_config, read_yaml, read_yaml_file
from prefdelta.errors import UserError
from prefdelta.evaluate.config import EvalConfig
from prefdelta.generate.config import GenerateConfig, GeneratorSpec
from prefdelta.judge.config import JudgeConfig, JudgeSpec
from prefdelta.pairs.config import PairsConfig
from prefdelta.problems.config import ProblemSource
from prefdelta.select.config import SelectConfig
from prefdelta.study.servers import ServerSpec
from prefdelta.train.config import StudentConfig, TrainConfig
from prefdelta.zoo.config import ZooConfig

SPEC_FILE = "spec.yaml"
"""The spec a workspace last ran with, written by every run (stage commands default to it)."""


class StudyConfig(BaseModel):
    """A whole study: every stage's section."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field("study", description="name shown in the report")
    seed: int = Field(0, description="seed recorded with the study (stages have their own seeds)")
    threads: int = Field(
        2, ge=1, le=256, description="torch threads (set explicitly: shared machines are noisy)"
    )
    data_dir: str | None = Field(
        None,
        description="local benchmark mirror for every stage [default: $PREFDELTA_DATA_DIR, else the hub]",
    )
    problems: list[ProblemSource] = Field(default_factory=list, description="sources of the pair problems")
    zoo: ZooConfig = Field(default_factory=ZooConfig, description="tiny models trained here (arith world)")
    servers: dict[str, ServerSpec] = Field(default_factory=dict, description="servers the study starts")
    generators: list[GeneratorSpec] = Field(default_factory=list, description="who samples the pair traces")
    generate: GenerateConfig = Field(
        default_factory=GenerateConfig, description="sampling of the pair traces"
    )
    judge: JudgeConfig = Field(default_factory=JudgeConfig, description="who scores every trace")
    pairs: PairsConfig = Field(default_factory=PairsConfig, description="how pairs are built")
    select: SelectConfig = Field(default_factory=SelectConfig, description="which pairs are trained on")
    student: StudentConfig = Field(default_factory=StudentConfig, description="the policy that is trained")
    train: TrainConfig = Field(default_factory=TrainConfig, description="how it is trained")
    eval: EvalConfig = Field(default_factory=EvalConfig, description="what is evaluated, on which suites")

    @model_validator(mode="after")
    def _references(self) -> StudyConfig:
        zoo_ids = self.zoo.ids()
        gen_ids = [g.id for g in self.generators]
        dupes = sorted({i for i in gen_ids if gen_ids.count(i) > 1})
        if dupes:
            raise ValueError(f"generators: generator id {dupes[0]!r} appears twice")
        for i, g in enumerate(self.generators):
            if g.backend == "zoo" and g.id not in zoo_ids:
                known = ", ".join(zoo_ids) or "the zoo is empty"
                raise ValueError(
                    f"generators.{i}: {g.id!r} is not a zoo model ({known}); give a model "
                    "(backend hf, vllm or openai) for a model that is not trained here"
                )
            if g.server is not None and g.server not in self.servers:
                raise ValueError(
                    f"generators.{i}.server: {g.server!r} is not in servers: ({', '.join(self.servers) or 'none'})"
                )
        for field_name, names in (
            ("pairs.chosen", self.pairs.chosen),
            ("pairs.rejected", self.pairs.rejected),
        ):
            for name in names if gen_ids else ():  # imported traces: checked against the generators table
                if name not in gen_ids:
                    raise ValueError(
                        f"{field_name}: names {name!r}, which is not a generator ({', '.join(gen_ids)})"
                    )
        worlds = {p.source for p in self.problems if p.source == "arith"}
        if not self.judge.judges:  # the default judge: exact where the world allows it
            kind = "oracle" if worlds or not self.problems else "calc"
            self.judge.judges.append(JudgeSpec(kind=kind))
        for i, j in enumerate(self.judge.judges):
            if j.kind == "oracle" and self.problems and not worlds:
                raise ValueError(
                    f"judge.judges.{i}.kind: the oracle judge exists only in the arith world, and no "
                    "problems come from it; use calc (GSM8K-style traces) or llm"
                )
            if j.llm is not None and j.llm.server is not None and j.llm.server not in self.servers:
                raise ValueError(f"judge.judges.{i}.llm.server: {j.llm.server!r} is not in servers:")
        student = self.student.model
        if student is not None and student in gen_ids and not self.student.generator:
            raise ValueError(
                f"student.model: {student!r} is also a generator, so its own traces are the most "
                "on-policy pairs (a confound); use another model, or set student.generator: true"
            )
        for i, m in enumerate(self.eval.models):
            if m.server is not None and m.server not in self.servers:
                raise ValueError(f"eval.models.{i}.server: {m.server!r} is not in servers:")
        return self

    # ---- what the stages ask of the spec ------------------------------------------------
    def is_zoo(self, model: str | None) -> bool:
        return model is not None and model in self.zoo.ids()

    def uses_arith(self) -> bool:
        return any(p.source == "arith" for p in self.problems) or bool(self.zoo.models)


def builtin_templates() -> dict[str, str]:
    """Study templates shipped with the package: name → one-line description."""
    folder = resources.files("prefdelta").joinpath("data/studies")
    out = {}
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".yaml"):
            first = entry.read_text().splitlines()[0].lstrip("# ").strip()
            out[entry.name.removesuffix(".yaml")] = first
    return out


def template_text(name: str) -> str:
    if name not in builtin_templates():
        raise UserError(f"unknown template {name!r}; shipped: {', '.join(builtin_templates())}")
    return resources.files("prefdelta").joinpath(f"data/studies/{name}.yaml").read_text()


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``over`` on top of ``base``: mappings merge key by key, anything else is replaced."""
    out = dict(base)
    for key, value in over.items():
        out[key] = (
            merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
        )
    return out


def spec_data(
    path: str | Path | None = None, template: str | None = None, _seen: tuple[str, ...] = ()
) -> tuple[dict[str, Any], str]:
    """The raw spec mapping and a name for error messages: a file, a template, or the demo.

    ``extends: NAME`` (a shipped template) or ``extends: PATH`` (a spec file, relative to
    this one) starts from that spec and merges this one on top (mappings key by key, lists
    and values replaced): a study that changes only its model sections is a few lines.
    """
    if path is not None and template is not None:
        raise UserError("give a spec file or --template, not both")
    if path is not None:
        data, source = read_yaml_file(path, "spec"), str(path)
    else:
        name = template or "demo"
        data, source = read_yaml(template_text(name), f"template {name}"), f"template {name}"
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise UserError(f"{source}: expected a mapping of config sections at the top level")
    parent = data.pop("extends", None)
    if parent is not None:
        if not isinstance(parent, str):
            raise UserError(f"{source}: field 'extends': a template name or a spec path")
        if source in _seen:
            raise UserError(f"{source}: field 'extends': a cycle ({' -> '.join([*_seen, source])})")
        candidate = Path(path).parent / parent if path is not None else Path(parent)
        if parent in builtin_templates():
            base, _ = spec_data(template=parent, _seen=(*_seen, source))
        elif candidate.suffix in (".yaml", ".yml"):
            base, _ = spec_data(candidate, _seen=(*_seen, source))
        else:
            raise UserError(
                f"{source}: field 'extends': {parent!r} is neither a template ({', '.join(builtin_templates())}) nor a .yaml file"
            )
        data = merge(base, data)
    return data, source


def load_spec(
    path: str | Path | None = None, overrides: Sequence[str] = (), template: str | None = None
) -> StudyConfig:
    """Load a study spec (a file, a shipped template, or the demo when neither is given).

    ``overrides`` are ``KEY=VALUE`` strings applied before validation; ``${VAR}`` strings
    are expanded after them.
    """
    data, source = spec_data(path, template)
    if overrides:
        data = apply_overrides(data, overrides)
        source += " with --set " + " ".join(overrides)
    return parse_spec(data, source)


def parse_spec(data: dict[str, Any], source: str) -> StudyConfig:
    try:
        data = expand_env(data)
    except UserError as err:
        raise UserError(f"{source}: {err}") from None
    return parse_config(data, source, StudyConfig)


def dump_spec(cfg: StudyConfig) -> str:
    """The spec as YAML (every default filled in), as written to ``<workspace>/spec.yaml``."""
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False, width=110)
