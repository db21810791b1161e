"""Config of the train stage."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


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
