"""One interface for every generation backend (``hf``, ``openai``, ``vllm``).

A backend turns requests (a prompt or chat messages, plus sampling parameters) into
results (text, finish reason, token counts, or an error with its reason). Generators,
the LLM judge and evaluation all call backends through this interface only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True)
class Sampling:
    """Sampling parameters; ``temperature`` 0 means greedy.

    ``max_tokens`` is always explicit: vLLM defaults to 16 and servers apply the
    model's generation_config otherwise.
    """

    temperature: float = 0.0
    top_p: float = 1.0
    max_tokens: int = 256
    stop: tuple[str, ...] = ()
    seed: int | None = 0
    n: int = 1


@dataclass(frozen=True)
class Request:
    """One generation request: ``prompt`` (completions) or ``messages`` (chat).

    ``response_format`` is passed to servers that support structured output (an OpenAI
    ``{"type": "json_schema", ...}`` object); backends that cannot honour it ignore it.
    """

    request_id: str
    prompt: str | None = None
    messages: tuple[dict[str, str], ...] | None = None
    sampling: Sampling = field(default_factory=Sampling)
    response_format: dict[str, Any] | None = None


@dataclass(frozen=True)
class Result:
    """One completion of a request (``index`` < ``sampling.n``), or an error row."""

    request_id: str
    index: int
    text: str
    finish_reason: str  # "stop", "length", or "error"
    prompt_tokens: int = 0
    completion_tokens: int = 0
    error: str | None = None
    attempts: int = 1  # HTTP attempts spent on this result (retries + 1); 1 for local backends
    # the text the model was fed: the prompt as sent, or the chat template's rendering of the
    # messages where the backend applied one itself; None where a server applied it unseen
    prompt_text: str | None = None
    # the server refused the request's content (HTTP 400/413/422): re-sending it cannot help
    refused: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None


def error_results(request: Request, reason: str, attempts: int = 1) -> list[Result]:
    """``sampling.n`` error rows for ``request``: a failed request is recorded, never dropped."""
    return [
        Result(request.request_id, i, "", "error", error=reason, attempts=attempts)
        for i in range(request.sampling.n)
    ]


def check_unique_ids(requests: Sequence[Request]) -> None:
    """Request ids key the results: a duplicate would make two requests indistinguishable."""
    seen: set[str] = set()
    for r in requests:
        if r.request_id in seen:
            raise ValueError(f"duplicate request_id {r.request_id!r}")
        if (r.prompt is None) == (r.messages is None):
            raise ValueError(f"request {r.request_id!r} needs exactly one of prompt or messages")
        seen.add(r.request_id)


@runtime_checkable
class Backend(Protocol):
    """What every backend provides."""

    name: str

    def generate(
        self, requests: Sequence[Request], on_result: Callable[[Result], None] | None = None
    ) -> list[Result]:
        """Results for every request: ``sampling.n`` per request, errors as rows, never lost."""
        ...
