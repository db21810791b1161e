"""The judge rubric as data: dimensions with anchored 1–5 scales, prompts, output schema.

The default rubric ships as ``prefdelta/data/rubric/default.yaml``. A user rubric is a
YAML file that either stands alone (same fields) or says ``extends: default`` and lists
only the ``dimensions`` to add or replace (same ``name`` replaces) and the names to
``drop``. :attr:`Rubric.hash` covers every field, and the LLM judge puts it in every
cache key, so a changed rubric never reuses answers given under another one.
"""

from __future__ import annotations

import hashlib
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from prefdelta.configio import read_text_file
from prefdelta.errors import UserError
from prefdelta.hashing import canonical_json, stable_hash

DEFAULT = "default"


class Scale(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    min: int = 1
    max: int = 5

    @model_validator(mode="after")
    def _ordered(self) -> Scale:
        if self.max <= self.min:
            raise ValueError(f"scale max ({self.max}) must be above min ({self.min})")
        return self


class Dimension(BaseModel):
    """One judged dimension: a question and one description per score (the anchors)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$", description="snake_case key in the judge's JSON")
    question: str = Field(min_length=1)
    anchors: dict[int, str]


class Rubric(BaseModel):
    """Dimensions, the judge prompts and the scale; immutable, hashed for cache keys."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    version: int = 1
    scale: Scale = Field(default_factory=Scale)
    dimensions: tuple[Dimension, ...] = Field(min_length=1)
    system: str
    template: str
    reference_template: str = "\nReference answer: {reference}\n"
    pairwise_template: str | None = None

    @field_validator("template")
    @classmethod
    def _template_fields(cls, v: str) -> str:
        for key in ("{problem}", "{trace}", "{begin}", "{end}", "{keys}"):
            if key not in v:
                raise ValueError(f"template must contain the placeholder {key}")
        return v

    @model_validator(mode="after")
    def _anchors_cover_scale(self) -> Rubric:
        names = [d.name for d in self.dimensions]
        dupes = {n for n in names if names.count(n) > 1}
        if dupes:
            raise ValueError(f"dimension {sorted(dupes)[0]!r} appears twice")
        want = set(range(self.scale.min, self.scale.max + 1))
        for d in self.dimensions:
            if set(d.anchors) != want:
                raise ValueError(
                    f"dimension {d.name!r} has anchors {sorted(d.anchors)}; expected one per score "
                    f"{self.scale.min}-{self.scale.max}"
                )
        return self

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(d.name for d in self.dimensions)

    @property
    def hash(self) -> str:
        """Content hash of the whole rubric (part of every LLM judgment's cache key)."""
        return stable_hash(self.model_dump(mode="json"))

    def dimensions_text(self) -> str:
        """The anchored scales as the prompt shows them."""
        blocks = []
        for d in self.dimensions:
            lines = [f"- {d.name}: {d.question}"]
            lines += [f"    {score} = {text}" for score, text in sorted(d.anchors.items())]
            blocks.append("\n".join(lines))
        return "\n".join(blocks)

    def json_schema(self, pairwise: bool = False) -> dict[str, Any]:
        """JSON schema of the judge's answer: an integer per dimension plus a rationale."""
        lo, hi = (1, 2) if pairwise else (self.scale.min, self.scale.max)
        props: dict[str, Any] = {n: {"type": "integer", "minimum": lo, "maximum": hi} for n in self.names}
        props["rationale"] = {"type": "string"}
        return {
            "type": "object",
            "properties": props,
            "required": [*self.names, "rationale"],
            "additionalProperties": False,
        }

    def response_format(self, pairwise: bool = False) -> dict[str, Any]:
        """An OpenAI/vLLM ``response_format`` asking for :meth:`json_schema`."""
        return {
            "type": "json_schema",
            "json_schema": {
                "name": "pairwise_judgment" if pairwise else "judgment",
                "schema": self.json_schema(pairwise),
                "strict": True,
            },
        }


def _delimiters(texts: list[str], tag: str) -> tuple[str, str]:
    """Begin/end markers that occur in none of ``texts`` (so a trace cannot close its own block)."""
    salt = 0
    while True:
        nonce = hashlib.sha256(f"{salt}:{canonical_json(texts)}".encode()).hexdigest()[:10]
        begin, end = f"<<<{tag}-{nonce}>>>", f"<<<END-{tag}-{nonce}>>>"
        if not any(begin in t or end in t for t in texts):
            return begin, end
        salt += 1


def render_prompt(rubric: Rubric, problem: str, trace: str, reference: str | None = None) -> str:
    """The user message for judging one trace (the trace delimited by unforgeable markers)."""
    begin, end = _delimiters([problem, trace, reference or ""], "SOLUTION")
    ref_block = rubric.reference_template.format(reference=reference) if reference else ""
    return rubric.template.format(
        problem=problem.strip(),
        reference_block=ref_block,
        trace=trace.strip(),
        begin=begin,
        end=end,
        dimensions=rubric.dimensions_text(),
        keys=", ".join(rubric.names),
    )


def render_pairwise_prompt(
    rubric: Rubric, problem: str, first: str, second: str, reference: str | None = None
) -> str:
    """The user message comparing two traces (pairwise mode)."""
    if rubric.pairwise_template is None:
        raise UserError(f"rubric {rubric.name!r} has no pairwise_template; pairwise mode needs one")
    texts = [problem, first, second, reference or ""]
    begin1, end1 = _delimiters(texts, "SOLUTION-1")
    begin2, end2 = _delimiters(texts, "SOLUTION-2")
    ref_block = rubric.reference_template.format(reference=reference) if reference else ""
    return rubric.pairwise_template.format(
        problem=problem.strip(),
        reference_block=ref_block,
        first=first.strip(),
        second=second.strip(),
        begin1=begin1,
        end1=end1,
        begin2=begin2,
        end2=end2,
        dimensions=rubric.dimensions_text(),
        keys=", ".join(rubric.names),
    )


def _read_yaml(text: str, source: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise UserError(f"{source}:{where} is not valid YAML: {getattr(err, 'problem', err)}") from None
    if not isinstance(data, dict):
        raise UserError(f"{source}: expected a mapping (name, dimensions, template, ...) at the top level")
    return data


def _validate(data: dict[str, Any], source: str) -> Rubric:
    try:
        return Rubric.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        msg = first["msg"].removeprefix("Value error, ")
        raise UserError(f"{source}: field '{loc}': {msg}" if loc else f"{source}: {msg}") from None


def default_rubric_data() -> dict[str, Any]:
    text = resources.files("prefdelta").joinpath("data/rubric/default.yaml").read_text()
    return _read_yaml(text, "embedded rubric default.yaml")


def merge_rubric(base: dict[str, Any], override: dict[str, Any], source: str) -> dict[str, Any]:
    """``override`` on top of ``base``: dimensions added or replaced by name, ``drop`` removed."""
    merged = {k: v for k, v in base.items()}
    dims = {d["name"]: d for d in base.get("dimensions", [])}
    drop = override.get("drop", []) or []
    if not isinstance(drop, list):
        raise UserError(f"{source}: field 'drop': expected a list of dimension names")
    for name in drop:
        if name not in dims:
            raise UserError(f"{source}: field 'drop': no dimension {name!r} in the base rubric")
        del dims[name]
    for i, dim in enumerate(override.get("dimensions", []) or []):
        if not isinstance(dim, dict) or "name" not in dim:
            raise UserError(f"{source}: field 'dimensions.{i}': expected a mapping with a 'name'")
        dims[dim["name"]] = dim
    for key, value in override.items():
        if key not in ("extends", "drop", "dimensions"):
            merged[key] = value
    merged["dimensions"] = list(dims.values())
    return merged


def load_rubric(path: str | Path | None = None) -> Rubric:
    """The rubric at ``path`` (``None`` or ``"default"``: the shipped one)."""
    if path is None or str(path) == DEFAULT:
        return _validate(default_rubric_data(), "embedded rubric default.yaml")
    p = Path(path)
    if not p.is_file():
        raise UserError(f"rubric file {p} not found")
    data = _read_yaml(read_text_file(p, "rubric"), str(p))
    extends = data.get("extends")
    if extends is not None:
        if extends != DEFAULT:
            raise UserError(f"{p}: field 'extends': only 'default' can be extended (got {extends!r})")
        data = merge_rubric(default_rubric_data(), data, str(p))
    return _validate(data, str(p))
