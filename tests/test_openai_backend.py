"""The openai backend against a scripted local server: faults, retries, n, secrets."""

from __future__ import annotations

import asyncio
import hashlib
from collections import Counter
from typing import Any

import pytest

from prefdelta.errors import UserError
from prefdelta.generate.base import Backend, Request, Sampling
from prefdelta.generate.openai import OpenAIBackend
from prefdelta.generate.scripted_server import ScriptedServer

FAULTS = ("429", "500", "slow", "truncated", "nonjson", "cut")


def _plan(body: dict[str, Any]) -> tuple[int, str]:
    """(number of failed attempts before success, fault kind) for a request, from its prompt.

    About half the requests fail 1-2 times then succeed; 1 in 8 never succeeds.
    """
    text = str(body.get("prompt") or body.get("messages"))
    h = int(hashlib.sha256(text.encode()).hexdigest(), 16)
    kind = FAULTS[h % len(FAULTS)]
    bucket = (h >> 8) % 8
    fails = 0 if bucket < 4 else (99 if bucket == 7 else 1 + bucket % 2)
    return fails, kind


def _script(body: dict[str, Any], attempt: int) -> str:
    fails, kind = _plan(body)
    return kind if attempt < fails else "ok"


@pytest.mark.integration
def test_every_request_ends_once_as_trace_or_error() -> None:
    max_retries = 2
    requests = [
        Request(f"r{i}", prompt=f"problem {i}", sampling=Sampling(temperature=0.7, max_tokens=16, seed=i))
        for i in range(60)
    ] + [
        Request(f"c{i}", messages=({"role": "user", "content": f"chat {i}"},), sampling=Sampling(seed=i))
        for i in range(20)
    ]
    with ScriptedServer(_script, slow_s=1.0) as server:
        backend = OpenAIBackend(
            server.url,
            "scripted",
            max_in_flight=16,
            timeout_s=0.3,
            max_retries=max_retries,
            backoff_base_s=0.01,
            backoff_max_s=0.05,
        )
        assert isinstance(backend, Backend)
        seen_in_callback: list[tuple[str, int]] = []
        results = backend.generate(
            requests, on_result=lambda r: seen_in_callback.append((r.request_id, r.index))
        )
    keys = [(r.request_id, r.index) for r in results]
    assert keys == [(q.request_id, 0) for q in requests]  # none lost, none duplicated, in order
    assert Counter(seen_in_callback) == Counter(keys)
    by_id = {r.request_id: r for r in results}
    n_errors = 0
    for q in requests:
        fails, kind = _plan({"prompt": q.prompt} if q.prompt else {"messages": [dict(m) for m in q.messages]})
        r = by_id[q.request_id]
        assert r.attempts <= max_retries + 1
        assert server.seen[_key(q)] == r.attempts  # the client's count is the server's count
        if fails > max_retries:
            n_errors += 1
            assert r.finish_reason == "error" and r.text == ""
            expected = {
                "429": "HTTP 429",
                "500": "HTTP 500",
                "slow": "timeout",
                "truncated": "malformed response body",
                "nonjson": "malformed response body",
                "cut": "connection error",
            }[kind]
            assert expected in r.error
            assert "gave up after 3 attempts" in r.error
        else:
            assert r.error is None, r.error
            assert r.attempts == fails + 1
            assert r.text.startswith("echo 0")
            assert r.prompt_tokens == 7 and r.completion_tokens == 5
    assert 0 < n_errors < len(requests)
    assert set(server.actions) >= set(FAULTS)  # every kind of fault happened


def _key(q: Request) -> str:
    from prefdelta.generate.scripted_server import request_key

    body: dict[str, Any] = {"seed": q.sampling.seed}
    if q.prompt is not None:
        body["prompt"] = q.prompt
    else:
        body["messages"] = [dict(m) for m in q.messages or ()]
    return request_key(body)


@pytest.mark.parametrize("honour_n", [True, False])
def test_n_samples_native_or_split(honour_n: bool) -> None:
    requests = [
        Request(f"q{i}", prompt=f"p{i}", sampling=Sampling(temperature=1.0, n=3, seed=10)) for i in range(4)
    ]
    with ScriptedServer(honour_n=honour_n) as server:
        results = OpenAIBackend(server.url, "m", max_in_flight=4).generate(requests)
    assert [(r.request_id, r.index) for r in results] == [(f"q{i}", j) for i in range(4) for j in range(3)]
    assert all(r.error is None for r in results)
    texts = [r.text for r in results if r.request_id == "q0"]
    assert len(set(texts)) == 3  # distinct samples: choices 0..2, or seeds 10, 11, 12
    if not honour_n:
        assert {t.split(":")[0] for t in texts} == {"echo 0 10", "echo 0 11", "echo 0 12"}


def test_api_key_from_env_never_in_results_or_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "sk-test-" + "x" * 20
    monkeypatch.setenv("PREFDELTA_TEST_KEY", secret)
    with ScriptedServer(lambda body, attempt: "500") as server:
        backend = OpenAIBackend(server.url, "m", api_key_env="PREFDELTA_TEST_KEY", max_retries=0)
        results = backend.generate([Request("a", prompt="x")])
    assert server.auth_headers == [f"Bearer {secret}"]
    assert results[0].error is not None and secret not in results[0].error
    assert secret not in repr(backend) and secret not in str(backend.describe())
    assert secret not in str(backend.__dict__)
    monkeypatch.delenv("PREFDELTA_TEST_KEY")
    with pytest.raises(UserError, match="PREFDELTA_TEST_KEY"):
        backend.generate([Request("a", prompt="x")])


def test_client_errors_are_not_retried_and_urls_round_robin() -> None:
    with ScriptedServer() as good, ScriptedServer(lambda body, attempt: "500") as bad:
        backend = OpenAIBackend([bad.url, good.url], "m", max_retries=3, backoff_base_s=0.001)
        results = backend.generate([Request(f"r{i}", prompt=f"p{i}") for i in range(10)])
    assert all(r.error is None for r in results)  # each failed attempt on `bad` moved to `good`
    assert sum(bad.seen.values()) >= 1 and sum(good.seen.values()) == 10
    with ScriptedServer() as server:
        backend = OpenAIBackend(server.url.replace("/v1", "/nope"), "m", max_retries=3)
        [r] = backend.generate([Request("x", prompt="p")])
    assert r.finish_reason == "error" and "HTTP 404" in r.error and r.attempts == 1
    assert not r.refused  # a URL or a model name to fix: the next run asks again
    with ScriptedServer(lambda body, attempt: "400") as server:
        backend = OpenAIBackend(server.url, "m", max_retries=3)
        [r] = backend.generate([Request("x", prompt="p")])
    assert r.error is not None and "HTTP 400" in r.error and r.attempts == 1 and r.refused
    assert sum(server.seen.values()) == 1


def test_generate_inside_running_loop_and_response_format() -> None:
    captured: list[dict[str, Any]] = []

    def script(body: dict[str, Any], attempt: int) -> str:
        captured.append(body)
        return "ok"

    fmt = {"type": "json_schema", "json_schema": {"name": "s", "schema": {"type": "object"}}}
    with ScriptedServer(script) as server:
        backend = OpenAIBackend(server.url, "m", extra_body={"top_k": 5})

        async def inside() -> list:
            return backend.generate(
                [Request("j", messages=({"role": "user", "content": "hi"},), response_format=fmt)]
            )

        [r] = asyncio.run(inside())
    assert r.error is None
    assert captured[0]["response_format"] == fmt and captured[0]["top_k"] == 5
    assert captured[0]["max_tokens"] == 256 and captured[0]["seed"] == 0
