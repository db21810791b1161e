"""Config of the pairs and select stages."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from prefdelta.judge.dimensions import DIMENSIONS


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


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
