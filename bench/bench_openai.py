"""OpenAIBackend throughput against a local server with a fixed 200 ms latency.

With 64 requests in flight and 200 ms per request, the ideal is 64 / 0.2 = 320
requests/s; the headline figure is the measured rate as a share of that ideal (goal >=
0.9). The peer, measured in the same run against the same server, is a bare aiohttp
loop with the same concurrency: what this machine allows at all (on a loaded shared
machine, scheduling delays cost more than the client does).
The server is a minimal ``aiohttp.web`` app answering ``/v1/completions`` after an
``asyncio.sleep(latency)``, in its own process so that it does not share the client's
GIL (the standard-library scripted server of the tests, one thread per connection,
itself costs ~0.7 ms of CPU per request and would be measured instead of the client).

    .venv/bin/python bench/bench_openai.py [--requests 1920] [--in-flight 64] [--latency 0.2]
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import subprocess
import sys
import time

import httpx

from prefdelta.generate.base import Request, Sampling
from prefdelta.generate.openai import OpenAIBackend


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(port: int, latency: float) -> None:
    """The fixed-latency server (run as ``bench_openai.py --serve PORT``)."""
    from aiohttp import web

    async def completions(request: web.Request) -> web.Response:
        body = await request.json()
        await asyncio.sleep(latency)
        text = f"echo: {str(body.get('prompt'))[:40]}"
        return web.json_response(
            {
                "id": "bench",
                "object": "text_completion",
                "choices": [{"index": 0, "text": text, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 7, "completion_tokens": 5, "total_tokens": 12},
            }
        )

    async def models(request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": "bench"}]})

    app = web.Application()
    app.router.add_post("/v1/completions", completions)
    app.router.add_get("/v1/models", models)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None, backlog=1024)


async def raw_aiohttp(url: str, n: int, in_flight: int) -> None:
    """The floor of this machine: the same requests through a bare aiohttp loop."""
    import aiohttp

    body = {"model": "bench", "prompt": "problem", "max_tokens": 64, "temperature": 0.7}
    semaphore = asyncio.Semaphore(in_flight)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=in_flight)) as session:

        async def one() -> None:
            async with semaphore, session.post(url, json=body) as resp:
                await resp.read()

        await asyncio.gather(*(one() for _ in range(n)))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--serve", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--requests", type=int, default=1920)
    parser.add_argument("--in-flight", type=int, default=64)
    parser.add_argument("--latency", type=float, default=0.2)
    args = parser.parse_args()
    if args.serve is not None:
        serve(args.serve, args.latency)
        return
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(port), "--latency", str(args.latency)],
        stdout=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/models", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("scripted server did not start")
            time.sleep(0.1)
        backend = OpenAIBackend(url, "bench", max_in_flight=args.in_flight, timeout_s=30, max_retries=2)
        sampling = Sampling(temperature=0.7, max_tokens=64)
        # warm-up: connections and code paths
        backend.generate(
            [Request(f"w{i}", prompt=f"warm {i}", sampling=sampling) for i in range(args.in_flight)]
        )
        requests = [Request(f"r{i}", prompt=f"problem {i}", sampling=sampling) for i in range(args.requests)]
        start = time.perf_counter()
        results = backend.generate(requests)
        elapsed = time.perf_counter() - start
        start = time.perf_counter()
        asyncio.run(raw_aiohttp(f"{url}/completions", args.requests, args.in_flight))
        raw_elapsed = time.perf_counter() - start
    finally:
        server.terminate()
        server.wait(timeout=10)
    errors = sum(r.error is not None for r in results)
    ideal = args.in_flight / args.latency
    rate = len(results) / elapsed
    print(f"requests {len(results)}  errors {errors}  elapsed {elapsed:.2f} s")
    print(
        f"measured {rate:.1f} req/s  ideal {ideal:.1f} req/s ({args.in_flight} in flight x {args.latency * 1000:.0f} ms)"
    )
    raw_rate = args.requests / raw_elapsed
    print(f"peer: a bare aiohttp loop (no retries, no parsing) on the same server: {raw_rate:.1f} req/s")
    print(f"figure openai_vs_bare_aiohttp {rate / raw_rate:.3f} ratio")
    print(f"figure openai_share_of_ideal {rate / ideal:.3f} ratio")


if __name__ == "__main__":
    main()
