"""Study configuration: pydantic models loaded from YAML, with errors a user can act on.

Every field is documented where it is declared (TRL's ``DPOConfig`` habit), with its
typical range. The embedded default study lives in ``prefdelta/data/configs/demo.yaml``.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from prefdelta.errors import UserError
from prefdelta.settings.eval import EvalConfig
from prefdelta.settings.generate import GenerateConfig
from prefdelta.settings.judge import JudgeConfig
from prefdelta.settings.pairs import PairsConfig, SelectConfig
from prefdelta.settings.train import TrainConfig
from prefdelta.settings.world import ProblemSet, SuiteConfig, WorldConfig
from prefdelta.zoo import ZooModelSpec


class StudyConfig(BaseModel):
    """A whole study: world, zoo, and one config section per stage."""

    model_config = ConfigDict(extra="forbid")

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
    if msg.startswith("Value error, "):  # our own validators name the field themselves
        msg = msg.removeprefix("Value error, ")
        field, colon, rest = msg.partition(":")
        if field.startswith(f"{loc}.") and colon:
            return f"{source}: field '{field}':{rest}"
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


def apply_overrides(data: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """``KEY=VALUE`` overrides on a parsed config: a dotted path (list items by index) and a
    YAML value, e.g. ``train.seeds=[0,1,2]`` or ``eval.suites.0.problems.n=500``.

    Returns a new mapping; the validation that follows names any field that does not exist.
    """
    out = copy.deepcopy(data)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--set {item!r}: expected KEY=VALUE, e.g. train.seeds=[0,1,2]")
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError:
            raise UserError(f"--set {item!r}: the value is not valid YAML") from None
        node: Any = out
        parts = key.strip().split(".")
        for depth, part in enumerate(parts):
            last = depth == len(parts) - 1
            where = ".".join(parts[: depth + 1])
            if isinstance(node, list):
                if not part.isdigit() or int(part) >= len(node):
                    raise UserError(f"--set {item!r}: {where} needs an index below {len(node)}")
                if last:
                    node[int(part)] = value
                else:
                    node = node[int(part)]
            elif isinstance(node, dict):
                if last:
                    node[part] = value
                else:
                    node = node.setdefault(part, {})
            else:
                raise UserError(f"--set {item!r}: {'.'.join(parts[:depth])} is a value, not a section")
    return out


def load_config(path: str | Path | None = None, overrides: Sequence[str] = ()) -> StudyConfig:
    """Load a study config from YAML; ``None`` loads the embedded default study.

    ``overrides`` are ``KEY=VALUE`` strings applied before validation (:func:`apply_overrides`).
    """
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
    if overrides:
        if not isinstance(data, dict):
            raise UserError(f"{source}: expected a mapping of config sections at the top level")
        data = apply_overrides(data, overrides)
        source += " with --set " + " ".join(overrides)
    return parse_config(data, source)


__all__ = [
    "EvalConfig",
    "GenerateConfig",
    "JudgeConfig",
    "PairsConfig",
    "ProblemSet",
    "SelectConfig",
    "StudyConfig",
    "SuiteConfig",
    "TrainConfig",
    "WorldConfig",
    "apply_overrides",
    "load_config",
    "parse_config",
]
