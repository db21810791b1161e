"""Config of the judge stage."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class JudgeConfig(_Strict):
    """Which judge scores the traces. ``oracle`` is exact in the arith world."""

    kind: Literal["oracle"] = "oracle"
