"""Config of the select stage (the ``select:`` section).

Every field is documented where it is declared, with its typical range.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from prefdelta.pairs.config import QUADRANTS, SELECT_KEYS, Quadrant


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SelectConfig(_Strict):
    """Which pairs to train on.

    The select stage writes at most one selection per strategy, so the train stage can
    name them by strategy: ``top`` (the top ``fraction`` or ``k`` pairs by ``key``),
    ``random`` (a seeded random subset of the same size: the control), ``all`` (every pair
    in the pool), and optionally ``bottom`` (the same size from the other end). The
    reference study kept the top ~30% by step-coherence delta.

    Top-k is exact: pairs are ordered by the key's value (descending for top, ascending
    for bottom), ties broken by ``pair_id`` ascending; pairs without a value come last.
    """

    key: str = Field("step_coherence", description="a dimension, 'outcome', 'aggregate' or 'generator_gap'")
    fraction: float = Field(0.3, gt=0.0, le=1.0, description="share of the pool kept; typical 0.1-0.5")
    k: int | None = Field(None, ge=1, description="keep exactly k pairs instead of a fraction")
    seed: int = Field(0, description="seed of the random control")
    bottom: bool = Field(False, description="also write the bottom selection (same size)")
    stratify: bool = Field(
        False,
        description="round-robin over problems (each problem's best pair before any problem's "
        "second), so no problem dominates a selection",
    )
    quadrants: list[Quadrant] = Field(
        default_factory=lambda: list(QUADRANTS),
        min_length=1,
        description="restrict the pool to these correctness quadrants (the reference ablation)",
    )
    by_generator_pair: bool = Field(
        False,
        description="also write one selection per (chosen, rejected) generator pair, all of the "
        "smallest group's size (strategies 'gen:<chosen>><rejected>'; train them with "
        "train.selections: [gen]): the generator-level delta ablation",
    )

    @model_validator(mode="after")
    def _known_key(self) -> SelectConfig:
        if self.key not in SELECT_KEYS:
            raise ValueError(f"unknown key {self.key!r}; expected one of {', '.join(SELECT_KEYS)}")
        return self
