"""Config of the generate stage."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GenerateConfig(_Strict):
    """Sampling for the pair traces. ``samples`` 1–8 per (generator, problem);
    ``temperature`` 0.6–1.0 gives diverse traces; 0 is greedy."""

    samples: int = Field(2, ge=1, le=64)
    temperature: float = Field(0.8, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    max_new_tokens: int = Field(96, ge=1)
    batch_size: int = Field(128, ge=1, description="prompts per forward batch")
    seed: int = 0
