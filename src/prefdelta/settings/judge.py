"""Config of the judge stage.

``kind``:

- ``oracle`` (default) — the exact arith-world oracle (``judge/oracle.py``); needs the
  arith problems' hidden computation graphs.
- ``calc`` — the calculator-annotation checker for GSM8K-style traces
  (``judge/calc.py``); needs each problem's annotated ``reference_solution``.
- ``llm`` — an LLM judge served by a generation backend (``judge/llm.py``), configured
  in ``llm:``; outcome correctness still comes from the exact grader named by
  ``answer_format``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LLMJudgeSettings(_Strict):
    """A served judge model and how it is asked.

    ``backend: openai`` talks to any OpenAI-compatible server at ``base_url`` (vLLM,
    SGLang, ``transformers serve``, hosted APIs); ``backend: hf`` loads ``model`` (a
    local folder) in-process with transformers.
    """

    backend: Literal["openai", "hf"] = "openai"
    model: str = Field(description="served model name (openai) or a local model folder (hf)")
    base_url: str | None = Field(None, description="e.g. http://127.0.0.1:8000/v1 (openai backend)")
    api_key_env: str | None = Field(
        None, description="env variable holding the API key; None for local servers"
    )
    judge_id: str | None = Field(None, description="id in the judgments table; default llm:<model>")
    rubric: str = Field("default", description="'default' or a rubric YAML path (may say `extends: default`)")
    repeats: int = Field(5, ge=1, le=20, description="judgments per trace, averaged (reference study: 5)")
    temperature: float = Field(0.6, ge=0.0, le=2.0, description="0.6 in the reference study; 0 = greedy")
    max_tokens: int = Field(512, ge=16, le=32768, description="room for the JSON and a short rationale")
    retries: int = Field(2, ge=0, le=10, description="extra attempts for unparseable replies (0-3)")
    structured: bool = Field(True, description="send the rubric's JSON schema as response_format")
    chat: bool = Field(True, description="chat messages (system + user); false: one completion prompt")
    max_in_flight: int = Field(
        16, ge=1, le=1024, description="concurrent requests (vLLM 64-256; transformers serve 4-16)"
    )
    timeout_s: float = Field(120.0, gt=0, description="per-request timeout of the openai backend")
    seed: int = 0

    @model_validator(mode="after")
    def _url_for_openai(self) -> LLMJudgeSettings:
        if self.backend == "openai" and not self.base_url:
            raise ValueError(
                "judge.llm.base_url is required for backend 'openai' (e.g. http://127.0.0.1:8000/v1)"
            )
        return self


class JudgeConfig(_Strict):
    """Which judge scores the traces. ``oracle`` is exact in the arith world."""

    kind: Literal["oracle", "calc", "llm"] = "oracle"
    llm: LLMJudgeSettings | None = None
    answer_format: Literal["gsm8k", "boxed", "choice"] = Field(
        "gsm8k", description="how outcome correctness is graded for calc/llm judges"
    )
    cache: str = Field(
        "cache/judge.sqlite", description="response cache of the llm judge, relative to the workspace"
    )

    @model_validator(mode="after")
    def _llm_needs_settings(self) -> JudgeConfig:
        if self.kind == "llm" and self.llm is None:
            raise ValueError("judge.kind 'llm' needs a judge.llm section (model, base_url, ...)")
        return self
