"""The ``openai`` backend: any OpenAI-compatible server (vLLM, SGLang, ``transformers serve``,
hosted APIs) through ``/v1/completions`` and ``/v1/chat/completions``.

Why asynchronous: a served model's throughput comes from many requests in flight at
once (continuous batching on the server). With ``max_in_flight`` requests outstanding
and a latency of L seconds, the client can reach ``max_in_flight / L`` requests/s —
e.g. 64 / 0.2 s = 320/s — only if it never waits on one response to send the next, and
only if the client's own CPU cost per request stays well under ``L / max_in_flight``.
That is why the transport is ``aiohttp``: on a 2-core machine its client spent ~0.3 ms
of CPU per request where ``httpx.AsyncClient`` spent ~6.5 ms, which capped ``httpx`` at
~25 requests/s in ``bench/bench_openai.py``.

Failure handling: a request that meets HTTP 429, a 5xx, a connection error, a timeout,
or a body that is not the expected JSON (truncated, HTML error page) is retried with
exponential backoff and full jitter (``sleep = U(0, min(backoff_max_s, backoff_base_s ×
2^attempt))``, AWS Architecture Blog, "Exponential Backoff and Jitter", 2015), honouring
a ``Retry-After`` header, at most ``max_retries`` times; then it becomes error rows
(one per requested sample) carrying the last reason. Any other 4xx is not retried.
Every request therefore ends as exactly ``n`` results.

``n`` samples: sent as the ``n`` field; a server that ignores it (``transformers serve``
does) answers with fewer choices, and the missing samples are requested one at a time
with seeds ``seed + index`` so they differ. After the first short answer from a base URL
the backend stops sending ``n`` there.

The API key is read from the environment variable named by ``api_key_env`` when the
client opens, kept only in the HTTP client's headers, and never appears in ``repr``,
results, errors or logs.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import random
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp

from prefdelta.errors import UserError
from prefdelta.generate.base import Request, Result, check_unique_ids

RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
REFUSED_STATUS = frozenset({400, 413, 422})
"""The server read the request and refused its content (a prompt over the context, a body it
cannot serve): sending the same request again, now or on a later run, gets the same answer.
401/403/404 stay ordinary failures: a key or a model name the user fixes before re-running."""


class _Retryable(Exception):
    """A failure worth retrying (rate limit, server error, broken body)."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class _Fatal(Exception):
    """A failure retrying cannot fix now (bad request, unknown model)."""

    def __init__(self, reason: str, refused: bool = False) -> None:
        super().__init__(reason)
        self.refused = refused


@dataclass(frozen=True)
class _Reply:
    """What the backend needs of an HTTP response, read in full inside the connection."""

    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


def _retry_after(response: _Reply) -> float | None:
    value = response.headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def _short(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class OpenAIBackend:
    """Completions and chat completions against one or more OpenAI-compatible base URLs.

    Args:
        base_urls: one URL or several (``http://host:8000/v1``), shared round-robin; a
            retry goes to the next URL, so one dead replica does not fail requests.
        model: the ``model`` field of every request (a hub id, or the folder a
            ``transformers serve`` server was started with).
        api_key_env: name of the environment variable holding the API key (``None``:
            no ``Authorization`` header; local servers need none).
        max_in_flight: requests outstanding at once, over all URLs; 16–256 for a vLLM
            server, 4–16 for ``transformers serve`` (it generates one request at a time).
        timeout_s: per-attempt timeout; set it above the longest expected generation.
        max_retries: retries after the first attempt (0–8); backoff doubles from
            ``backoff_base_s`` (0.1–2 s) up to ``backoff_max_s``.
        supports_n: ``True`` send ``n``; ``False`` always issue n requests; ``None``
            (default) send ``n`` and fall back per URL when a server returns fewer choices.
        extra_body: extra JSON fields for every request (e.g. ``{"top_k": 20}`` for
            vLLM); must not hold secrets — it is part of the generator's provenance.
    """

    name = "openai"
    seeded_per_request = True  # each request carries its own seed

    def __init__(
        self,
        base_urls: str | Sequence[str],
        model: str,
        *,
        api_key_env: str | None = None,
        max_in_flight: int = 64,
        timeout_s: float = 120.0,
        max_retries: int = 4,
        backoff_base_s: float = 0.5,
        backoff_max_s: float = 30.0,
        supports_n: bool | None = None,
        extra_body: dict[str, Any] | None = None,
    ) -> None:
        urls = [base_urls] if isinstance(base_urls, str) else list(base_urls)
        if not urls:
            raise UserError("openai backend: at least one base URL is needed")
        if max_in_flight < 1 or max_retries < 0 or timeout_s <= 0:
            raise UserError("openai backend: max_in_flight >= 1, max_retries >= 0 and timeout_s > 0 expected")
        self.base_urls = [u.rstrip("/") for u in urls]
        self.model = model
        self.api_key_env = api_key_env
        self.max_in_flight = max_in_flight
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.supports_n = supports_n
        self.extra_body = dict(extra_body or {})
        self._no_n: set[str] = set()
        self._rng = random.Random()

    def __repr__(self) -> str:
        return (
            f"OpenAIBackend(base_urls={self.base_urls!r}, model={self.model!r}, "
            f"api_key_env={self.api_key_env!r}, max_in_flight={self.max_in_flight})"
        )

    def describe(self) -> dict[str, Any]:
        """Provenance of this backend (no secret: the key's variable name only)."""
        return {
            "backend": self.name,
            "base_urls": self.base_urls,
            "model": self.model,
            "api_key_env": self.api_key_env,
            "extra_body": self.extra_body,
        }

    # ---- public ------------------------------------------------------------------------
    def generate(
        self, requests: Sequence[Request], on_result: Callable[[Result], None] | None = None
    ) -> list[Result]:
        """Blocking wrapper of :meth:`agenerate` (runs it in a thread when a loop is running)."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self.agenerate(requests, on_result))
        box: dict[str, Any] = {}

        def run() -> None:
            try:
                box["out"] = asyncio.run(self.agenerate(requests, on_result))
            except BaseException as err:
                box["err"] = err

        thread = threading.Thread(target=run, name="openai-backend")
        thread.start()
        thread.join()
        if "err" in box:
            raise box["err"]
        return box["out"]

    async def agenerate(
        self, requests: Sequence[Request], on_result: Callable[[Result], None] | None = None
    ) -> list[Result]:
        """All results (``sampling.n`` per request), in request order; ``on_result`` as each arrives."""
        check_unique_ids(requests)
        headers = {"Content-Type": "application/json"}
        if self.api_key_env:
            key = os.environ.get(self.api_key_env)
            if not key:
                raise UserError(
                    f"openai backend: environment variable {self.api_key_env} (API key) is not set"
                )
            headers["Authorization"] = f"Bearer {key}"
        semaphore = asyncio.Semaphore(self.max_in_flight)
        turn = itertools.count()
        out: dict[str, list[Result]] = {}
        connector = aiohttp.TCPConnector(limit=self.max_in_flight, limit_per_host=0, force_close=False)
        timeout = aiohttp.ClientTimeout(total=self.timeout_s)
        async with aiohttp.ClientSession(connector=connector, headers=headers, timeout=timeout) as client:

            async def one(request: Request) -> None:
                results = await self._request_all(client, semaphore, turn, request)
                out[request.request_id] = results
                if on_result is not None:
                    for r in results:
                        on_result(r)

            await asyncio.gather(*(one(r) for r in requests))
        return [r for req in requests for r in out[req.request_id]]

    # ---- one request -------------------------------------------------------------------
    async def _request_all(
        self,
        client: aiohttp.ClientSession,
        semaphore: asyncio.Semaphore,
        turn: itertools.count,
        request: Request,
    ) -> list[Result]:
        """``n`` results of ``request``: one call with ``n``, then single calls for what is missing."""
        n = request.sampling.n
        got: list[Result] = []
        if n > 1 and self.supports_n is not False:
            got = await self._call(client, semaphore, turn, request, n=n, first_index=0, seed_offset=0)
            if got and got[0].error is not None:
                return got
        while len(got) < n:
            index = len(got)
            more = await self._call(
                client, semaphore, turn, request, n=1, first_index=index, seed_offset=index
            )
            got.extend(more[:1])
        return got[:n]

    def _body(self, request: Request, n: int, seed_offset: int) -> tuple[str, dict[str, Any]]:
        s = request.sampling
        body: dict[str, Any] = {
            "model": self.model,
            "temperature": s.temperature,
            "top_p": s.top_p,
            "max_tokens": s.max_tokens,
        }
        if n > 1:
            body["n"] = n
        if s.stop:
            body["stop"] = list(s.stop)
        if s.seed is not None:
            body["seed"] = s.seed + seed_offset
        if request.response_format is not None:
            body["response_format"] = request.response_format
        body.update(self.extra_body)
        if request.messages is not None:
            body["messages"] = [dict(m) for m in request.messages]
            return "/chat/completions", body
        body["prompt"] = request.prompt
        return "/completions", body

    async def _call(
        self,
        client: aiohttp.ClientSession,
        semaphore: asyncio.Semaphore,
        turn: itertools.count,
        request: Request,
        *,
        n: int,
        first_index: int,
        seed_offset: int,
    ) -> list[Result]:
        """One logical call with retries: results for indices ``first_index…``, or error rows."""
        path, body = self._body(request, n, seed_offset)
        chat = request.messages is not None
        reason = ""
        first = next(turn)  # round-robin over calls; a retry moves on to the next URL
        for attempt in range(self.max_retries + 1):
            url = self.base_urls[(first + attempt) % len(self.base_urls)]
            if n > 1 and url in self._no_n and self.supports_n is None:
                body.pop("n", None)
            delay: float | None = None
            try:
                async with semaphore, client.post(url + path, json=body) as resp:
                    response = _Reply(
                        resp.status, {k.lower(): v for k, v in resp.headers.items()}, await resp.read()
                    )
                results = self._parse(response, request, chat, first_index, attempt + 1)
                if n > 1 and len(results) < n:
                    self._no_n.add(url)
                return results
            except _Fatal as err:
                return self._errors(request, str(err), first_index, n, attempt + 1, refused=err.refused)
            except _Retryable as err:
                reason, delay = str(err), err.retry_after
            except TimeoutError as err:
                reason = f"timeout after {self.timeout_s:g}s ({type(err).__name__})"
            except aiohttp.ClientPayloadError as err:
                reason = f"connection error: body cut short ({type(err).__name__}: {_short(str(err)) or 'no detail'})"
            except aiohttp.ClientError as err:
                reason = f"connection error ({type(err).__name__}: {_short(str(err)) or 'no detail'})"
            if attempt < self.max_retries:
                cap = min(self.backoff_max_s, self.backoff_base_s * 2**attempt)
                wait = self._rng.uniform(0, cap)
                await asyncio.sleep(max(wait, min(delay, self.backoff_max_s)) if delay is not None else wait)
        return self._errors(
            request,
            f"{reason}; gave up after {self.max_retries + 1} attempts",
            first_index,
            n,
            self.max_retries + 1,
        )

    @staticmethod
    def _errors(
        request: Request, reason: str, first_index: int, n: int, attempts: int, *, refused: bool = False
    ) -> list[Result]:
        return [
            Result(
                request.request_id,
                first_index + i,
                "",
                "error",
                error=reason,
                attempts=attempts,
                refused=refused,
            )
            for i in range(n)
        ]

    @staticmethod
    def _parse(
        response: _Reply, request: Request, chat: bool, first_index: int, attempts: int
    ) -> list[Result]:
        status = response.status
        if status in RETRY_STATUS or status >= 500:
            raise _Retryable(f"HTTP {status}: {_short(response.text)}", _retry_after(response))
        if status >= 400:
            raise _Fatal(f"HTTP {status}: {_short(response.text)}", refused=status in REFUSED_STATUS)
        try:
            data = json.loads(response.body)
            choices = data["choices"]
            if not isinstance(choices, list) or not choices:
                raise KeyError("choices")
            usage = data.get("usage") or {}
            prompt_tokens = int(usage.get("prompt_tokens") or 0)
            completion_total = int(usage.get("completion_tokens") or 0)
            share = completion_total // len(choices)
            results = []
            for i, choice in enumerate(sorted(choices, key=lambda c: c.get("index", 0))):
                text = choice["message"]["content"] if chat else choice["text"]
                results.append(
                    Result(
                        request.request_id,
                        first_index + i,
                        text or "",
                        str(choice.get("finish_reason") or "stop"),
                        prompt_tokens=prompt_tokens,
                        completion_tokens=share,
                        attempts=attempts,
                        # /completions sends the prompt as is; /chat/completions has the server
                        # apply a chat template this client never sees
                        prompt_text=None if chat else request.prompt,
                    )
                )
        except (
            json.JSONDecodeError,
            UnicodeDecodeError,
            KeyError,
            TypeError,
            ValueError,
            AttributeError,
        ) as err:
            raise _Retryable(
                f"malformed response body ({type(err).__name__}): {_short(response.text, 120)!r}"
            ) from None
        return results
