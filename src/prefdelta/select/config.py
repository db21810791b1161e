"""Config of the select stage (the ``select:`` section).

Every field is documented where it is declared, with its typical range.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from prefdelta.judge.dimensions import DIMENSIONS
from prefdelta.pairs.config import QUADRANTS, SELECT_KEYS, Quadrant

NAME = r"^[A-Za-z0-9_-]+$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LadderConfig(_Strict):
    """The generator-level experiment: one side of every pair fixed, the other side climbing.

    With ``fixed: rejected`` (the reference study's design) the rejected generator is
    fixed and the chosen one rises from *equal* (the same generator: its best sample
    against its worst, ``pairs.within``) through every stronger generator; with ``fixed:
    chosen`` (the mirror) the chosen generator is fixed and the rejected one varies. Every
    rung gets the same number of pairs, drawn with a seed, so gains compare at equal data.
    Strategies are ``ladder:<name>:<chosen>><rejected>``.
    """

    name: str = Field("ladder", pattern=NAME, description="name of this design in strategies and the report")
    fixed: Literal["rejected", "chosen"] = Field("rejected", description="which side is held fixed")
    generator: str = Field(min_length=1, description="the fixed generator id")
    rungs: list[str] = Field(
        default_factory=list,
        description="generators on the other side, in order [default: every generator that has pairs with it]",
    )
    equal: bool = Field(
        True, description="include the equal rung (the fixed generator against itself; needs pairs.within)"
    )
    k: int | None = Field(None, ge=1, description="pairs per rung [default: the smallest rung's pool]")
    seed: int = Field(0, description="seed of the draw of each rung's pairs")


class GridConfig(_Strict):
    """The sample-level experiment, inside one generator pair so that the sample delta varies
    with the samples and not with the generators: for each key and fraction, the top,
    random and bottom fraction of the pair's pairs by the key's delta, plus all of them,
    plus correctness-quadrant cells. Strategies are ``grid:<name>:<strategy>:<key>:<fraction>``,
    ``grid:<name>:all`` and ``grid:<name>:quadrant:<quadrants>``.
    """

    name: str = Field("grid", pattern=NAME, description="name of this design in strategies and the report")
    chosen: str | None = Field(
        None, description="the generator pair's chosen side [default: the widest gap's]"
    )
    rejected: str | None = Field(
        None, description="the generator pair's rejected side [default: the widest gap's]"
    )
    keys: list[str] = Field(
        default_factory=lambda: [*DIMENSIONS, "outcome", "aggregate"],
        min_length=1,
        description="deltas to rank by: the five dimensions, outcome, aggregate",
    )
    fractions: list[float] = Field(
        default_factory=lambda: [0.1, 0.3, 0.5], min_length=1, description="shares of the pool, 0.1-0.5"
    )
    strategies: list[Literal["top", "random", "bottom"]] = Field(
        default_factory=lambda: ["top", "random", "bottom"], min_length=1, description="which end, or a draw"
    )
    all: bool = Field(True, description="also the whole pool (the full-data reference)")
    quadrants: list[list[Quadrant]] = Field(
        default_factory=list,
        description="quadrant cells, e.g. [[CW], [CC, WW]]: correct over wrong only, same correctness only",
    )
    seed: int = Field(0, description="seed of the random cells (the same draw for every key)")

    @model_validator(mode="after")
    def _known(self) -> GridConfig:
        bad = [k for k in self.keys if k not in SELECT_KEYS or k == "generator_gap"]
        if bad:
            raise ValueError(f"keys: unknown key {bad[0]!r}; expected dimensions, outcome or aggregate")
        if any(not 0 < f <= 1 for f in self.fractions):
            raise ValueError(f"fractions: each in (0, 1], got {self.fractions}")
        return self


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

    ladders: list[LadderConfig] = Field(
        default_factory=list, description="generator-level designs (one side fixed); see LadderConfig"
    )
    ladders_share_size: bool = Field(
        True,
        description="every ladder draws the same number of pairs per rung (the smallest pool of any "
        "rung of any ladder, capped by a ladder's k): the designs then compare at equal data, and "
        "a generator pair on two ladders (the ladder's and the mirror's widest rung) is one "
        "selection, trained once; false: each ladder sized by its own rungs",
    )
    grids: list[GridConfig] = Field(
        default_factory=list, description="sample-level designs inside one generator pair; see GridConfig"
    )
    basic: bool = Field(
        True, description="write the top / random / all (bottom, gen) selections of the fields above"
    )

    @model_validator(mode="after")
    def _known_key(self) -> SelectConfig:
        names = [d.name for d in [*self.ladders, *self.grids]]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"two designs are named {dupes[0]!r}; give each ladder and grid its own name")
        if self.key not in SELECT_KEYS:
            raise ValueError(f"unknown key {self.key!r}; expected one of {', '.join(SELECT_KEYS)}")
        return self
