"""The prompt each trace was sampled from, as exports need it.

Why: a preference pair teaches the student to prefer one continuation *of a prompt*; if
the exported prompt is not the one the generator saw (the bare problem instead of the
templated instruction, or no chat template where one was applied), training conditions
on a context the texts were never written for. The generate stage stores the prompt as
sent (``traces.prompt_text`` / ``traces.prompt_messages``, see
:mod:`prefdelta.generate.runner`); this module reads it back.

Traces without those columns — a workspace generated before they existed, or traces
brought in by ``prefdelta pairs import`` — get the prompt rendered again from the
problem: by the trace's ``template`` in its ``prompt_style``, or the problem's
``prompt`` itself when the trace names no template (imported traces: how their prompts
were written is not known). Such traces are marked ``stored = False`` so that an export can say so.
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

from prefdelta.errors import UserError
from prefdelta.generate.prompts import PromptTemplate, load_template, template_for_source

PROMPT_COLUMNS: tuple[str, ...] = ("prompt", "problem_text", "question")


def problem_prompt_column(problems: pd.DataFrame) -> str:
    """The column of ``problems`` holding the problem as a model should see it."""
    for col in PROMPT_COLUMNS:
        if col in problems.columns:
            return col
    raise UserError(f"problems table has no prompt column (expected one of {', '.join(PROMPT_COLUMNS)})")


def _present(value: Any) -> bool:
    return isinstance(value, str)


def _template(name: Any, source: Any) -> PromptTemplate | None:
    """The template a generated trace names; ``None`` for a trace that names none (imported).

    A template given as a file records only its name, which may no longer load: then the
    source's default is the best guess.
    """
    if not isinstance(name, str) or not name:
        return None
    try:
        return load_template(name)
    except UserError:
        return template_for_source(source) if isinstance(source, str) else load_template("raw")


def trace_prompts(traces: pd.DataFrame, problems: pd.DataFrame) -> pd.DataFrame:
    """Per ``trace_id``: ``prompt_text`` (str or None), ``prompt_messages`` (list or None), ``stored``.

    At least one of the two prompts is set for every trace.
    """
    prob = problems.drop_duplicates("problem_id").set_index("problem_id")
    problem_text = prob[problem_prompt_column(problems)]
    source = prob["source"] if "source" in prob.columns else pd.Series(dtype=object)
    rows = []
    for t in traces.drop_duplicates("trace_id").to_dict("records"):
        text, messages = t.get("prompt_text"), t.get("prompt_messages")
        if _present(text) or _present(messages):
            rows.append(
                {
                    "trace_id": t["trace_id"],
                    "prompt_text": text if _present(text) else None,
                    "prompt_messages": json.loads(messages) if _present(messages) else None,
                    "stored": True,
                }
            )
            continue
        pid = t["problem_id"]
        if pid not in problem_text.index:
            continue  # check_references names such a trace before this matters
        problem = str(problem_text[pid])
        template = _template(t.get("template"), source.get(pid))
        chat = t.get("prompt_style") == "chat"
        rows.append(
            {
                "trace_id": t["trace_id"],
                "prompt_text": None if chat else (template.text(problem) if template else problem),
                "prompt_messages": list(template.messages(problem)) if chat and template else None,
                "stored": False,
            }
        )
        if chat and template is None:
            rows[-1]["prompt_messages"] = [{"role": "user", "content": problem}]
    return pd.DataFrame(rows, columns=["trace_id", "prompt_text", "prompt_messages", "stored"]).set_index(
        "trace_id"
    )


def plain_prompt(text: str | None, messages: list[dict[str, str]] | None) -> str:
    """The prompt as one string: the text the model was fed, else the last user message.

    The second case is a chat request a server rendered with a template not known here.
    """
    if text is not None:
        return text
    users = [m["content"] for m in messages or [] if m.get("role") == "user"]
    return users[-1] if users else ""


def chat_prompt(text: str | None, messages: list[dict[str, str]] | None) -> list[dict[str, str]]:
    """The prompt as chat messages: the messages sent, else the plain prompt as one user turn."""
    if messages is not None:
        return [dict(m) for m in messages]
    return [{"role": "user", "content": (text or "").rstrip("\n")}]
