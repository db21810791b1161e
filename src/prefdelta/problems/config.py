"""Config of the problems stage: the ``problems:`` section, a list of sources.

Each entry names one source of the problems every generator answers and pairs are
built on — the offline arith world, a built-in benchmark, a user's file, or a hub
dataset::

    problems:
      - {source: arith, n: 200, seed: 2}                    # the offline world
      - {source: gsm8k, split: train, n: 500, seed: 0}      # 500 drawn at random, seeded
      - {path: data/mine.jsonl, name: mine, columns: {prompt: q, reference_answer: a}}
      - {hub: openai/gsm8k, split: train, columns: {prompt: question, reference_answer: answer},
         answer_format: gsm8k}                               # online only
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from prefdelta.errors import UserError
from prefdelta.sources.custom import AnswerFormat, ColumnMap

Grader = Literal["arith", "gsm8k", "boxed", "choice", "humaneval"]


class ProblemSource(BaseModel):
    """One source of pair problems: exactly one of ``source``, ``path`` or ``hub``."""

    model_config = ConfigDict(extra="forbid")

    source: str | None = Field(
        None,
        description="built-in source: arith (offline world), gsm8k, math500, minerva_math, mmlu_stem, "
        "aime24, amc23, svamp, humaneval",
    )
    path: str | None = Field(None, description="a user's JSONL / Parquet file or save_to_disk folder")
    hub: str | None = Field(None, description="a hub dataset id (needs network)")
    name: str = Field("custom", description="path/hub: the source name of the rows (and their ids)")
    split: str | None = Field(
        None, description="split to read (gsm8k: train or test); arith: a label in the ids [default: test]"
    )
    n: int | None = Field(None, ge=1, description="problems kept (arith: generated); None keeps all")
    seed: int = Field(0, description="arith: the world's seed; others: seed of the draw of n problems")
    sample: Literal["random", "first"] = Field(
        "random", description="how n problems are taken from a larger set: seeded random draw or the first n"
    )
    spec: dict[str, Any] | None = Field(
        None, description="arith only: knobs of the world (min_steps, max_steps, high, distractors, …)"
    )
    columns: ColumnMap | None = Field(None, description="path/hub: which column feeds which field")
    answer_format: AnswerFormat = Field(
        "as_is", description="path/hub: how the answer column is read (as_is, gsm8k '#### N', boxed)"
    )
    grader: Grader | None = Field(
        None, description="exact grader of the answers [default: the source's; files: gsm8k]"
    )

    @model_validator(mode="after")
    def _one_kind(self) -> ProblemSource:
        given = [k for k in ("source", "path", "hub") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of source, path or hub")
        if self.source is not None:
            from prefdelta.sources.registry import check_split, source_info

            try:
                info = source_info(self.source)
                check_split(self.source, self.split or "test")
            except UserError as err:
                raise ValueError(str(err)) from None
            if info.world and self.n is None:
                raise ValueError(f"n: the {self.source} world generates problems; say how many")
            if self.spec is not None and not info.world:
                raise ValueError(f"spec: only the arith world takes a spec, not {self.source}")
            if info.world and self.spec is not None:
                from prefdelta.worlds.arith import ArithSpec

                ArithSpec.model_validate(self.spec)
        elif self.spec is not None:
            raise ValueError("spec: only the arith world takes a spec")
        return self

    @property
    def label(self) -> str:
        return self.source or self.name

    def resolved_grader(self) -> str:
        if self.grader is not None:
            return self.grader
        if self.source is not None:
            from prefdelta.sources.registry import source_info

            return source_info(self.source).grader
        return "boxed" if self.answer_format == "boxed" else "gsm8k"
