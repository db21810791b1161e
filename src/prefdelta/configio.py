"""Reading YAML configs: parse errors with line numbers, validation errors naming the
field, ``--set KEY=VALUE`` overrides, and ``${VAR}`` / ``${VAR:-default}`` expansion.

Used by the study spec and by every other YAML the project reads (suites, generator
files, rubrics), so that all of them fail the same way: one line that names the file,
the field and what was expected.
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from prefdelta.errors import UserError

_FIELD = re.compile(r"^([A-Za-z_][\w]*(?:\.[\w]+)*): (.*)$", re.S)
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def format_validation_error(err: ValidationError, source: str) -> str:
    """One line: ``<source>: field '<dotted path>': <message> (got <value>)``.

    Our own validators say ``"<field>: <message>"`` with a field relative to where they
    sit (or absolute); that field is joined to the location pydantic reports.
    """
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first["loc"])
    msg = first["msg"]
    if msg.startswith("Value error, "):
        msg = msg.removeprefix("Value error, ")
        m = _FIELD.match(msg)
        if m:
            field, rest = m.groups()
            if not loc or field == loc or field.startswith(loc + "."):
                loc = field
            elif not loc.endswith("." + field) and loc != field:
                loc = f"{loc}.{field}"
            msg = rest
    got = first.get("input")
    got_s = "" if isinstance(got, dict | list) or got is None else f" (got {got!r})"
    more = f"; {len(err.errors()) - 1} more error(s)" if len(err.errors()) > 1 else ""
    return f"{source}: field '{loc or '(top level)'}': {msg}{got_s}{more}"


def parse_config(data: Any, source: str, model: type[BaseModel]) -> Any:
    """Validate ``data`` into ``model``; a :class:`UserError` names the field on failure."""
    if not isinstance(data, dict):
        raise UserError(f"{source}: expected a mapping of config sections at the top level")
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise UserError(format_validation_error(err, source)) from None


def read_yaml(text: str, source: str) -> Any:
    """Parsed YAML; a :class:`UserError` with line and column when it is not valid."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}:" if mark else ""
        raise UserError(f"{source}:{where} not valid YAML ({getattr(err, 'problem', None) or err})") from None


def read_text_file(path: str | Path, what: str = "config") -> str:
    """A config file's text; one-line errors for a missing, unreadable or non-UTF-8 file.

    Every YAML the project reads (specs, suites, rubrics, prompt templates, generator
    files) comes through here, so a file saved in another encoding fails the same way
    everywhere, naming the file and the byte, instead of with a traceback.
    """
    p = Path(path)
    if not p.is_file():
        raise UserError(f"{what} file {p} not found")
    try:
        return p.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise UserError(f"{p}: not UTF-8 text (byte {err.start}); save the {what} as UTF-8") from None
    except OSError as err:
        raise UserError(f"{p}: cannot be read ({err.strerror})") from None


def read_yaml_file(path: str | Path, what: str = "config") -> Any:
    """A YAML file parsed; clear errors for a missing, unreadable or non-UTF-8 file."""
    return read_yaml(read_text_file(path, what), str(path))


def expand_env(data: Any, where: str = "") -> Any:
    """``${VAR}`` and ``${VAR:-default}`` in every string value replaced from the environment.

    An unset variable without a default is an error naming the field: a path silently
    becoming empty would send a run to the wrong place.
    """
    if isinstance(data, dict):
        return {k: expand_env(v, f"{where}.{k}" if where else str(k)) for k, v in data.items()}
    if isinstance(data, list):
        return [expand_env(v, f"{where}.{i}") for i, v in enumerate(data)]
    if isinstance(data, str) and "${" in data:

        def sub(m: re.Match[str]) -> str:
            name, default = m.group(1), m.group(2)
            value = os.environ.get(name)
            if value is None or (value == "" and default is not None):
                if default is None:
                    raise UserError(f"field '{where}': environment variable {name} is not set (${{{name}}})")
                return default
            return value

        return _VAR.sub(sub, data)
    return data


def apply_overrides(data: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """``KEY=VALUE`` overrides on a parsed config: a dotted path (list items by index) and a
    YAML value, e.g. ``train.seeds=[0,1,2]`` or ``eval.suites.0.n=500``.

    Returns a new mapping; the validation that follows names any field that does not exist.
    """
    out = copy.deepcopy(data)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--set {item!r}: expected KEY=VALUE, e.g. train.seeds=[0,1,2]")
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError:
            raise UserError(f"--set {item!r}: the value is not valid YAML") from None
        node: Any = out
        parts = key.strip().split(".")
        for depth, part in enumerate(parts):
            last = depth == len(parts) - 1
            where = ".".join(parts[: depth + 1])
            if isinstance(node, list):
                if not part.isdigit() or int(part) >= len(node):
                    raise UserError(f"--set {item!r}: {where} needs an index below {len(node)}")
                if last:
                    node[int(part)] = value
                else:
                    node = node[int(part)]
            elif isinstance(node, dict):
                if last:
                    node[part] = value
                else:
                    node = node.setdefault(part, {})
            else:
                raise UserError(f"--set {item!r}: {'.'.join(parts[:depth])} is a value, not a section")
    return out
