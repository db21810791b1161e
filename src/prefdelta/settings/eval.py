"""Config of the eval stage."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from prefdelta.settings.world import SuiteConfig


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EvalConfig(_Strict):
    """Accuracy of every generator and every trained student on the suites (greedy)."""

    suites: list[SuiteConfig]
    max_new_tokens: int = Field(128, ge=1)
    batch_size: int = Field(128, ge=1)
