"""Config of the pairs stage (the ``pairs:`` section).

Every field is documented where it is declared, with its typical range.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from prefdelta.judge.dimensions import DIMENSIONS

Quadrant = Literal["CC", "CW", "WC", "WW"]
"""Correctness quadrant of a pair: first letter the chosen trace, second the rejected one
(``C`` correct, ``W`` wrong). ``CW`` is the classic correct-over-incorrect pair."""

QUADRANTS: tuple[str, ...] = ("CC", "CW", "WC", "WW")

WEIGHT_KEYS: tuple[str, ...] = (*DIMENSIONS, "outcome")

SELECT_KEYS: tuple[str, ...] = (*DIMENSIONS, "outcome", "aggregate", "generator_gap")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PairsConfig(_Strict):
    """How preference pairs are built.

    Strategies:

    - ``cross_generator``: chosen from generator A, rejected from generator B on the same
      problem, A more capable than B by accuracy measured on the problems both answered.
      ``chosen``/``rejected`` restrict A and B to these generator ids (empty: any).
    - ``within_generator``: for each generator and problem, the best sample against the
      worst by the judge aggregate (``weights``); ``chosen`` restricts the generators.
    - ``correctness``: a correct trace against an incorrect one on the same problem (the
      common baseline); ``chosen``/``rejected`` restrict the generators on each side.

    Identical texts are never paired.
    """

    strategy: Literal["cross_generator", "within_generator", "correctness"] = Field(
        "cross_generator", description="pairing strategy (see the class docstring)"
    )
    chosen: list[str] = Field(default_factory=list, description="generator ids allowed on the chosen side")
    rejected: list[str] = Field(
        default_factory=list, description="generator ids allowed on the rejected side"
    )
    min_gap: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="cross_generator: smallest capability gap (accuracy, 0-1) between A and B; typical 0-0.5",
    )
    per_problem: int = Field(
        1,
        ge=1,
        le=100_000,
        description="cap on pairs per (generator pair, problem): 1 = one pair per problem; "
        "samples_A x samples_B = all combinations. Typical 1-16",
    )
    quadrants: list[Quadrant] = Field(
        default_factory=lambda: list(QUADRANTS),
        min_length=1,
        description="correctness filter applied before matching: keep only candidate pairs in "
        "these quadrants (['CC', 'CW'] = chosen must be correct)",
    )
    flagged: Literal["keep", "drop"] = Field(
        "keep",
        description="pairs whose chosen trace scores below the rejected one on `flag_key`: "
        "keep them (marked in the `flagged` column) or drop them",
    )
    flag_key: str = Field("aggregate", description="delta that flags a pair when negative")
    seed: int = Field(0, description="seed of the sample matching")
    within: list[str] = Field(
        default_factory=list,
        description="also build within-generator pairs (best against worst sample by judged quality) "
        "for these generators: the 'equal' rung of a generator ladder, where chosen and rejected "
        "come from the same model",
    )
    weights: dict[str, float] = Field(
        default_factory=lambda: dict.fromkeys(DIMENSIONS, 1.0),
        description="weights of the dimensions (and optionally 'outcome') in delta_aggregate; "
        "non-negative, typical 0-1",
    )

    @model_validator(mode="after")
    def _known_names(self) -> PairsConfig:
        unknown = [k for k in self.weights if k not in WEIGHT_KEYS]
        if unknown:
            raise ValueError(
                f"unknown dimension {unknown[0]!r} in weights; expected one of {', '.join(WEIGHT_KEYS)}"
            )
        if any(w < 0 for w in self.weights.values()) or not any(w > 0 for w in self.weights.values()):
            raise ValueError("weights must be non-negative with at least one positive")
        if self.flag_key not in (*WEIGHT_KEYS, "aggregate"):
            raise ValueError(
                f"unknown flag_key {self.flag_key!r}; expected one of {', '.join(WEIGHT_KEYS)}, aggregate"
            )
        return self
