"""Config of the judge stage.

``kind``:

- ``oracle`` (default) — the exact arith-world oracle (``judge/oracle.py``); needs the
  arith problems' hidden computation graphs.
- ``calc`` — the calculator-annotation checker for GSM8K-style traces
  (``judge/calc.py``); needs each problem's annotated ``reference_solution``.
- ``llm`` — an LLM judge served by a generation backend (``judge/llm.py``), configured
  in ``llm:``.

Several judges can score the same traces (``judges:``), one ``judge_id`` each; the
outcome column always comes from the exact grader of the problem's source.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LLMJudgeSettings(_Strict):
    """A served judge model and how it is asked.

    ``backend: openai`` talks to any OpenAI-compatible server at ``base_url`` (vLLM,
    SGLang, ``transformers serve``, hosted APIs); ``backend: hf`` loads ``model`` (a
    local folder) in-process with transformers.
    """

    backend: Literal["openai", "hf"] = Field(
        "openai", description="openai (a served model) or hf (in-process)"
    )
    model: str | None = Field(
        None, description="served model name (openai) or a local model folder (hf) [server: its model]"
    )
    base_url: str | None = Field(None, description="e.g. http://127.0.0.1:8000/v1 (openai backend)")
    server: str | None = Field(None, description="openai backend: a server of the servers: section")
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
    transport_retries: int = Field(
        4,
        ge=0,
        le=20,
        description="openai backend: retries of a request that met HTTP 429/5xx, a timeout or a cut "
        "body before it becomes an error row (the next run re-sends those)",
    )
    seed: int = Field(0, description="sampling seed of the judge's requests")

    @model_validator(mode="after")
    def _url_for_openai(self) -> LLMJudgeSettings:
        if self.backend == "openai" and not (self.base_url or self.server):
            raise ValueError(
                "base_url: required for backend 'openai' (e.g. http://127.0.0.1:8000/v1), or name a server"
            )
        if self.base_url and self.server:
            raise ValueError("server: give base_url or server, not both")
        if self.backend == "hf" and not self.model:
            raise ValueError("model: backend 'hf' needs a local model folder")
        if not (self.model or self.server):
            raise ValueError("model: name the served model (or give a server)")
        return self


class JudgeSpec(_Strict):
    """One judge. ``oracle`` is exact but exists only in the arith world; ``calc`` checks
    calculator annotations (GSM8K-style traces); ``llm`` asks a model (``llm:``)."""

    kind: Literal["oracle", "calc", "llm"] = Field("oracle", description="oracle, calc or llm")
    id: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9._:/-]+$",
        description="judge_id in the judgments table [default: arith-oracle, calc-checker, llm:<model>]",
    )
    llm: LLMJudgeSettings | None = Field(None, description="kind llm: the model and how it is asked")
    max_error_rate: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description="this judge's own limit on its share of error rows [default: judge.max_error_rate]",
    )

    @model_validator(mode="after")
    def _llm_needs_settings(self) -> JudgeSpec:
        if self.kind == "llm" and self.llm is None:
            raise ValueError("kind 'llm' needs an llm section (model, base_url or server, ...)")
        if self.kind != "llm" and self.llm is not None:
            raise ValueError(f"llm: only kind 'llm' takes an llm section, not {self.kind!r}")
        return self

    @property
    def judge_id(self) -> str:
        if self.id:
            return self.id
        if self.kind == "llm":
            assert self.llm is not None
            return self.llm.judge_id or f"llm:{self.llm.model or self.llm.server}"
        return {"oracle": "arith-oracle", "calc": "calc-checker"}[self.kind]


class JudgeConfig(_Strict):
    """The judges that score every trace; ``deltas_from`` names the one whose scores make
    the pairs' deltas (the others are kept for audits and the report).

    Shorthand for one judge: ``judge: {kind: calc}``. Outcome correctness is never a
    judge's opinion: every judge's ``outcome`` column comes from the exact grader of
    the problem's source.
    """

    judges: list[JudgeSpec] = Field(
        default_factory=list,
        description="one entry per judge [default: the oracle on arith problems, else the calc checker]",
    )
    deltas_from: str | None = Field(None, description="judge_id used for the deltas [default: the first]")
    cache: str = Field(
        "cache/judge.sqlite", description="response cache of the llm judges, relative to the workspace"
    )
    max_error_rate: float = Field(
        0.2,
        ge=0.0,
        le=1.0,
        description="largest share of error rows a judge may leave; above it the stage fails (exit 2) "
        "after writing its rows, naming the judge and its commonest errors",
    )

    @model_validator(mode="before")
    @classmethod
    def _one_judge(cls, data: Any) -> Any:
        if isinstance(data, dict) and ("kind" in data or "llm" in data or "id" in data):
            own = {k: data[k] for k in ("deltas_from", "cache", "max_error_rate") if k in data}
            judge = {k: v for k, v in data.items() if k not in own}
            return {**own, "judges": [judge]}
        return data

    @model_validator(mode="after")
    def _ids(self) -> JudgeConfig:
        ids = [j.judge_id for j in self.judges]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"judges: judge_id {dupes[0]!r} appears twice; give each an id")
        if self.deltas_from is not None and self.deltas_from not in ids:
            raise ValueError(f"deltas_from: {self.deltas_from!r} is not a judge id ({', '.join(ids)})")
        return self

    @property
    def delta_judge(self) -> str:
        return self.deltas_from or (self.judges[0].judge_id if self.judges else "arith-oracle")
