"""prefdelta's OpenAI client (``OpenAIBackend``, aiohttp) against the ``openai`` SDK's ``AsyncOpenAI``.

Two measurements, the same for every client, the same concurrency and retry budget:

1. **Throughput.** The fixed-latency ``aiohttp.web`` server of ``bench/bench_openai.py``
   (in its own process, so the server's CPU is not the client's) answers
   ``/v1/completions`` after ``--latency`` seconds; each client sends ``--requests``
   completions with ``--in-flight`` outstanding. Rounds alternate between the clients (a
   busy machine slows them alike); the best round of each counts. Clients: ours; the SDK
   as installed (``AsyncOpenAI()``: its httpx transport); the SDK on its aiohttp
   transport (``AsyncOpenAI(http_client=DefaultAioHttpClient())``).

2. **Faults.** The scripted server (``prefdelta.generate.scripted_server``) fails the first
   attempt of a fixed share of the requests, one fault kind each — HTTP 429 (``Retry-After:
   0``), HTTP 500, a truncated JSON body, an HTML body with status 200, a connection cut
   mid-body, an answer slower than the client's timeout — and one kind on every attempt
   (HTTP 500 forever). Per client and fault kind: answered right, answered wrong (a
   "success" whose text is not the server's), reported failures (our error rows, the
   SDK's exceptions), lost (no outcome at all), duplicated (more than one outcome), and
   attempts the server saw per request. Both clients get ``max_retries`` retries and the
   same per-attempt timeout; each backs off its own way.

    .venv/bin/python bench/bench_openai_sdk.py [--requests 960] [--in-flight 64] [--latency 0.2]
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

from prefdelta.generate.base import Request, Sampling
from prefdelta.generate.openai import OpenAIBackend
from prefdelta.generate.scripted_server import ScriptedServer, echo_text, request_key

HERE = Path(__file__).resolve().parent
MAX_TOKENS = 64
SEED = 0  # both clients send the same bodies: model, prompt, max_tokens, temperature, seed
# fault kind of request i (by i % len(MIX)); "ok" requests are never disturbed
MIX = ("429", "500", "truncated", "nonjson", "cut", "slow", "500-always", *("ok",) * 13)

Outcome = tuple[str, str]  # ("ok", text) or ("error", reason)
Client = Callable[[list[str], int], Awaitable[dict[str, list[Outcome]]]]


# ---- the clients: prompts in, outcomes per prompt out ----------------------------------------------
def ours(url: str, timeout: float, retries: int) -> Client:
    async def run(prompts: list[str], in_flight: int) -> dict[str, list[Outcome]]:
        backend = OpenAIBackend(url, "bench", max_in_flight=in_flight, timeout_s=timeout, max_retries=retries)
        sampling = Sampling(temperature=0.7, max_tokens=MAX_TOKENS, seed=SEED)
        results = await backend.agenerate(
            [Request(f"r{i}", prompt=p, sampling=sampling) for i, p in enumerate(prompts)]
        )
        out: dict[str, list[Outcome]] = defaultdict(list)
        for r in results:
            prompt = prompts[int(r.request_id[1:])]
            out[prompt].append(("error", r.error) if r.error is not None else ("ok", r.text))
        return out

    return run


def sdk(url: str, timeout: float, retries: int, aiohttp_transport: bool = False) -> Client:
    from openai import AsyncOpenAI, DefaultAioHttpClient
    from openai.types import Completion

    async def run(prompts: list[str], in_flight: int) -> dict[str, list[Outcome]]:
        extra: dict[str, Any] = {"http_client": DefaultAioHttpClient()} if aiohttp_transport else {}
        client = AsyncOpenAI(base_url=url, api_key="none", timeout=timeout, max_retries=retries, **extra)
        semaphore = asyncio.Semaphore(in_flight)
        out: dict[str, list[Outcome]] = defaultdict(list)

        async def one(prompt: str) -> None:
            async with semaphore:
                try:
                    resp = await client.completions.create(
                        model="bench", prompt=prompt, max_tokens=MAX_TOKENS, temperature=0.7, seed=SEED
                    )
                except Exception as err:  # what a caller of the SDK sees
                    out[prompt].append(("error", f"{type(err).__name__}: {str(err)[:80]}"))
                    return
                if isinstance(resp, Completion):
                    out[prompt].append(("ok", resp.choices[0].text))
                else:  # returned as a success, but not a completion
                    out[prompt].append(("ok", f"<returned a {type(resp).__name__}: {str(resp)[:30]}>"))

        async with client:
            await asyncio.gather(*(one(p) for p in prompts))
        return out

    return run


# ---- 1. throughput ----------------------------------------------------------------------------------
def throughput(args: argparse.Namespace) -> dict[str, float]:
    from bench_openai import free_port

    port = free_port()
    server = subprocess.Popen(
        [sys.executable, str(HERE / "bench_openai.py"), "--serve", str(port), "--latency", str(args.latency)],
        stdout=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/v1"
    clients = {
        "ours (aiohttp)": ours(url, 30, 2),
        "sdk AsyncOpenAI (httpx)": sdk(url, 30, 2),
        "sdk AsyncOpenAI (aiohttp transport)": sdk(url, 30, 2, aiohttp_transport=True),
    }
    best: dict[str, float] = {}
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/models", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("latency server did not start")
            time.sleep(0.1)
        for client in clients.values():  # warm-up: connections, imports, code paths
            asyncio.run(client([f"warm {i}" for i in range(args.in_flight)], args.in_flight))
        for rnd in range(args.rounds):
            for name, client in clients.items():
                prompts = [f"problem {rnd} {i}" for i in range(args.requests)]
                start = time.perf_counter()
                out = asyncio.run(client(prompts, args.in_flight))
                elapsed = time.perf_counter() - start
                good = sum(o[0][0] == "ok" for o in out.values())
                rate = good / elapsed
                best[name] = max(best.get(name, 0.0), rate)
                print(f"  round {rnd} {name:<38} {rate:7.1f} req/s  ({good}/{len(prompts)} ok)")
    finally:
        server.terminate()
        server.wait(timeout=10)
    ideal = args.in_flight / args.latency
    print(f"throughput, best of {args.rounds} rounds (ideal {ideal:.0f} req/s):")
    for name, rate in best.items():
        print(f"  {name:<38} {rate:7.1f} req/s  {rate / ideal:5.2f} of ideal")
    return best


# ---- 2. faults --------------------------------------------------------------------------------------
def kind_of(prompt: str) -> str:
    return MIX[int(prompt.rsplit(" ", 1)[1]) % len(MIX)]


def script(body: dict[str, Any], attempt: int) -> str:
    kind = kind_of(str(body.get("prompt")))
    if kind == "500-always":
        return "500"
    return kind if attempt == 0 else "ok"


def faults(args: argparse.Namespace) -> None:
    clients = {
        "ours": lambda url: ours(url, args.timeout, args.retries),
        "sdk": lambda url: sdk(url, args.timeout, args.retries),
        "sdk+aiohttp": lambda url: sdk(url, args.timeout, args.retries, aiohttp_transport=True),
    }
    prompts = [f"fault problem {i}" for i in range(args.fault_requests)]
    kinds = sorted(set(MIX), key=MIX.index)
    print(
        f"faults: {len(prompts)} requests, {args.fault_in_flight} in flight, timeout {args.timeout:g} s, "
        f"max_retries {args.retries}, slow answers {args.slow:g} s"
    )
    header = f"  {'client':<12} {'fault':<11} {'n':>4} {'right':>6} {'wrong':>6} {'failed':>7} {'lost':>5} {'dup':>4} {'attempts':>9}"
    print(header)
    for name, make in clients.items():
        with ScriptedServer(script, latency_s=0.02, slow_s=args.slow) as server:
            start = time.perf_counter()
            out = asyncio.run(make(server.url)(prompts, args.fault_in_flight))
            elapsed = time.perf_counter() - start
            seen = Counter({k: v for k, v in server.seen.items()})
        reasons: Counter[str] = Counter()
        for kind in kinds:
            mine = [p for p in prompts if kind_of(p) == kind]
            right = wrong = failed = lost = dup = 0
            attempts = 0
            for p in mine:
                outcomes = out.get(p, [])
                attempts += seen[request_key({"prompt": p, "seed": SEED})]
                if not outcomes:
                    lost += 1
                    continue
                dup += len(outcomes) > 1
                status, value = outcomes[0]
                if status == "error":
                    failed += 1
                    reasons[f"{kind}: {str(value)[:70]}"] += 1
                elif value == echo_text({"prompt": p, "seed": SEED}, 0):
                    right += 1
                else:
                    wrong += 1
                    reasons[f"{kind}: wrong text {str(value)[:50]!r}"] += 1
            print(
                f"  {name:<12} {kind:<11} {len(mine):4d} {right:6d} {wrong:6d} {failed:7d} {lost:5d} {dup:4d} "
                f"{attempts / max(1, len(mine)):9.2f}"
            )
        print(f"  {name:<12} elapsed {elapsed:.1f} s")
        for reason, count in reasons.most_common(6):
            print(f"  {name:<12}   {count:3d} x {reason}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=960)
    parser.add_argument("--in-flight", type=int, default=64)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--fault-requests", type=int, default=140)
    parser.add_argument("--fault-in-flight", type=int, default=16)
    parser.add_argument("--timeout", type=float, default=1.0, help="per-attempt timeout in the fault run")
    parser.add_argument("--slow", type=float, default=1.5, help="seconds a 'slow' answer takes")
    parser.add_argument("--retries", type=int, default=4)
    args = parser.parse_args()
    best = throughput(args)
    faults(args)
    base = best["ours (aiohttp)"]
    print(f"figure openai_client_speedup_vs_sdk {base / best['sdk AsyncOpenAI (httpx)']:.2f} ratio")
    print(
        f"figure openai_client_speedup_vs_sdk_aiohttp {base / best['sdk AsyncOpenAI (aiohttp transport)']:.2f} ratio"
    )


if __name__ == "__main__":
    main()
