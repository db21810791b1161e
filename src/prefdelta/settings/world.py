"""Config of the arith world: problem sets for the zoo, the pairs and the suites."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from prefdelta.worlds.arith import ArithSpec


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
