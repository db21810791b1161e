"""Read scores out of an LLM judge's reply: strict JSON first, then a tolerant fallback.

Only the judge's own output is ever parsed — never the prompt, which holds the
untrusted trace. Within that output the parser takes, in order:

1. the whole reply as JSON (code fences stripped) — what structured output returns;
2. the *last* balanced ``{...}`` object in the reply that has every key (models often
   think aloud first, or echo an example object, before the answer);
3. ``key: N`` / ``key = N`` lines, the last occurrence of each key.

A reply is accepted only when every dimension has an integer in range; anything else
is a :class:`ParseError` with the reason, so nothing is ever scored silently.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any


class ParseError(ValueError):
    """The judge's reply has no complete, in-range score for every dimension."""


_FENCE = re.compile(r"^```(?:json)?\s*|\s*```$", re.IGNORECASE)


def _balanced_objects(text: str) -> list[str]:
    """Every top-level balanced ``{...}`` substring (string literals respected)."""
    out: list[str] = []
    depth = 0
    start = -1
    in_str = False
    escape = False
    for i, ch in enumerate(text):
        if in_str:
            if escape:
                escape = False
            elif ch == "\\":
                escape = True
            elif ch == '"':
                in_str = False
            continue
        if ch == '"' and depth > 0:
            in_str = True
        elif ch == "{":
            if depth == 0:
                start = i
            depth += 1
        elif ch == "}" and depth > 0:
            depth -= 1
            if depth == 0:
                out.append(text[start : i + 1])
    return out


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"\s*\d+\s*", value):
        return int(value)
    return None


def _scores_from_obj(obj: Any, keys: Sequence[str], lo: int, hi: int) -> dict[str, int]:
    if not isinstance(obj, dict):
        raise ParseError("the JSON is not an object")
    if isinstance(obj.get("scores"), dict):  # {"scores": {...}} is a common variant
        obj = {**obj, **obj["scores"]}
    out: dict[str, int] = {}
    for key in keys:
        if key not in obj:
            raise ParseError(f"no score for {key!r}")
        value = _as_int(obj[key])
        if value is None or not lo <= value <= hi:
            raise ParseError(f"score for {key!r} is {obj[key]!r}, not an integer {lo}-{hi}")
        out[key] = value
    return out


def parse_scores(text: str, keys: Sequence[str], lo: int = 1, hi: int = 5) -> tuple[dict[str, int], str]:
    """Scores per key and how they were found (``json``, ``json_embedded`` or ``lines``)."""
    stripped = _FENCE.sub("", text.strip())
    try:
        return _scores_from_obj(json.loads(stripped), keys, lo, hi), "json"
    except (json.JSONDecodeError, ParseError):
        pass
    last_error: str | None = None
    for chunk in reversed(_balanced_objects(text)):
        try:
            obj = json.loads(chunk)
        except json.JSONDecodeError:
            continue
        try:
            return _scores_from_obj(obj, keys, lo, hi), "json_embedded"
        except ParseError as err:
            last_error = str(err)
    found: dict[str, int] = {}
    for key in keys:
        pattern = re.compile(rf"[\"'*]*{re.escape(key)}[\"'*]*\s*[:=]\s*\**\s*(\d+)(?![\d.])", re.IGNORECASE)
        hits = pattern.findall(text)
        if hits:
            value = int(hits[-1])
            if lo <= value <= hi:
                found[key] = value
    if len(found) == len(keys):
        return found, "lines"
    missing = [k for k in keys if k not in found]
    reason = last_error or f"no score for {missing[0]!r}"
    raise ParseError(f"unparseable judge output: {reason}")
