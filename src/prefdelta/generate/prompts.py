"""Prompt templates as data: ``prefdelta/data/prompts/<name>.yaml`` (or any YAML file).

A template has two renderings of the same instruction, because a generator either has a
chat template (instruct models: the problem goes in a user message, the tokenizer's or
server's chat template formats it) or has none (base models and the arith zoo: a plain
completion prompt that starts the answer). Fields::

    name, sources (the problem sources it is the default for), answer_format,
    system (optional system message), user (chat), completion (plain), stop

``{problem}`` is replaced by the problem's ``prompt`` column. Plain replacement, not
``str.format``: math templates contain literal braces (``\\boxed{}``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from prefdelta.configio import read_text_file
from prefdelta.errors import UserError

PLACEHOLDER = "{problem}"
FIELDS = ("name", "sources", "answer_format", "system", "user", "completion", "stop")


@dataclass(frozen=True)
class PromptTemplate:
    name: str
    user: str
    completion: str
    system: str | None = None
    stop: tuple[str, ...] = ()
    answer_format: str = "as_is"
    sources: tuple[str, ...] = ()

    def messages(self, problem: str) -> tuple[dict[str, str], ...]:
        """Chat messages: the optional system message, then the user turn."""
        user = {"role": "user", "content": self.user.replace(PLACEHOLDER, problem)}
        return ({"role": "system", "content": self.system}, user) if self.system else (user,)

    def text(self, problem: str) -> str:
        """The plain completion prompt."""
        return self.completion.replace(PLACEHOLDER, problem)


def parse_template(data: Any, source: str) -> PromptTemplate:
    """A :class:`PromptTemplate` from parsed YAML; errors name the file and field."""
    if not isinstance(data, dict):
        raise UserError(f"{source}: a prompt template is a mapping of {', '.join(FIELDS)}")
    unknown = sorted(set(data) - set(FIELDS))
    if unknown:
        raise UserError(f"{source}: unknown field '{unknown[0]}' (expected {', '.join(FIELDS)})")
    for key in ("name", "user", "completion"):
        if not isinstance(data.get(key), str) or not data[key]:
            raise UserError(f"{source}: field '{key}' must be a non-empty string")
    for key in ("user", "completion"):
        if PLACEHOLDER not in data[key]:
            raise UserError(f"{source}: field '{key}' must contain {PLACEHOLDER}")
    stop = data.get("stop") or []
    if not isinstance(stop, list) or not all(isinstance(s, str) and s for s in stop):
        raise UserError(f"{source}: field 'stop' must be a list of non-empty strings")
    system = data.get("system")
    if system is not None and not isinstance(system, str):
        raise UserError(f"{source}: field 'system' must be a string or null")
    return PromptTemplate(
        name=data["name"],
        user=data["user"],
        completion=data["completion"],
        system=system,
        stop=tuple(stop),
        answer_format=str(data.get("answer_format") or "as_is"),
        sources=tuple(data.get("sources") or ()),
    )


def _read(path: str, text: str) -> PromptTemplate:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}:" if mark else ""
        raise UserError(f"{path}:{where} not valid YAML ({getattr(err, 'problem', err)})") from None
    return parse_template(data, path)


@cache
def builtin_templates() -> dict[str, PromptTemplate]:
    """The templates shipped in ``prefdelta/data/prompts``, by name."""
    folder = resources.files("prefdelta").joinpath("data/prompts")
    out = {}
    for entry in folder.iterdir():
        if entry.name.endswith(".yaml"):
            t = _read(f"prompts/{entry.name}", entry.read_text())
            out[t.name] = t
    return out


def load_template(name_or_path: str | Path) -> PromptTemplate:
    """A built-in template by name, or a template YAML file by path."""
    text = str(name_or_path)
    builtin = builtin_templates()
    if text in builtin:
        return builtin[text]
    path = Path(text).expanduser()
    if path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise UserError(f"prompt template file {path} not found")
        return _read(str(path), read_text_file(path, "prompt template"))
    raise UserError(
        f"unknown prompt template '{text}'; built-in: {', '.join(sorted(builtin))}, or a .yaml path"
    )


def template_for_source(source: str) -> PromptTemplate:
    """The default template of a problem source (``raw`` when none claims it)."""
    for t in builtin_templates().values():
        if source in t.sources:
            return t
    return builtin_templates()["raw"]
