"""A scripted OpenAI-compatible server for fault tests, benchmarks and dry runs.

It answers ``/v1/completions`` and ``/v1/chat/completions`` with a deterministic text
(``"echo <n> <seed>: <prompt head>"``) after a fixed latency, and misbehaves on purpose
when its *script* says so: HTTP 429 (with ``Retry-After``), HTTP 500, a response slower
than the client's timeout, a truncated JSON body, a body that is not JSON at all, or a
connection closed mid-body. The script is a function of the request body and of how
many times the same request was seen before, so a test knows exactly which requests
succeed on which attempt.

Standard library only (``http.server``, one thread per connection, HTTP/1.1
keep-alive), so it runs wherever prefdelta runs. Run it standalone for a dry run of a
generation config::

    python -m prefdelta.generate.scripted_server --port 8011 --latency 0.2
"""

from __future__ import annotations

import argparse
import contextlib
import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Action = str  # "ok" | "400" | "429" | "500" | "slow" | "truncated" | "nonjson" | "cut"
ACTIONS = ("ok", "400", "429", "500", "slow", "truncated", "nonjson", "cut")
Script = Callable[[dict[str, Any], int], Action]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024  # the default backlog of 5 refuses bursts of connections


def request_key(body: dict[str, Any]) -> str:
    """What identifies "the same request" across retries: prompt or messages, and seed."""
    what = body.get("prompt") if "prompt" in body else body.get("messages")
    return json.dumps([what, body.get("seed")], sort_keys=True)


def echo_text(body: dict[str, Any], index: int) -> str:
    """The deterministic completion of one choice."""
    what = body.get("prompt")
    if what is None:
        what = (body.get("messages") or [{}])[-1].get("content", "")
    seed = body.get("seed")
    return f"echo {index} {seed}: {str(what)[:40]}"


class ScriptedServer:
    """The server, run in a background thread; a context manager.

    Args:
        script: ``script(body, attempt)`` -> action; ``attempt`` counts from 0 per
            :func:`request_key`. Default: always ``"ok"``.
        latency_s: sleep before every answer (the fixed model latency of a benchmark).
        slow_s: how long a ``"slow"`` answer takes (set it above the client timeout).
        honour_n: answer ``n`` choices (vLLM) or always one (``transformers serve``).
    """

    def __init__(
        self,
        script: Script | None = None,
        *,
        latency_s: float = 0.0,
        slow_s: float = 2.0,
        honour_n: bool = True,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.script = script or (lambda body, attempt: "ok")
        self.latency_s = latency_s
        self.slow_s = slow_s
        self.honour_n = honour_n
        self.seen: Counter[str] = Counter()
        self.actions: Counter[str] = Counter()
        self.auth_headers: list[str | None] = []
        self._lock = threading.Lock()
        self._httpd = _Server((host, port), self._handler())
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def start(self) -> ScriptedServer:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, args=(0.05,), name="scripted-server", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> ScriptedServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _decide(self, body: dict[str, Any], auth: str | None) -> Action:
        key = request_key(body)
        with self._lock:
            attempt = self.seen[key]
            self.seen[key] += 1
            self.auth_headers.append(auth)
        action = self.script(body, attempt)
        with self._lock:
            self.actions[action] += 1
        return action

    def _answer(self, body: dict[str, Any], chat: bool) -> dict[str, Any]:
        n = int(body.get("n") or 1) if self.honour_n else 1
        choices = []
        for i in range(n):
            text = echo_text(body, i)
            choice: dict[str, Any] = {"index": i, "finish_reason": "stop"}
            if chat:
                choice["message"] = {"role": "assistant", "content": text}
            else:
                choice["text"] = text
            choices.append(choice)
        return {
            "id": "cmpl-scripted",
            "object": "chat.completion" if chat else "text_completion",
            "model": body.get("model", ""),
            "choices": choices,
            "usage": {"prompt_tokens": 7, "completion_tokens": 5 * n, "total_tokens": 7 + 5 * n},
        }

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # one buffered write per response and no Nagle: headers and body in separate
            # small segments would wait on the client's delayed ACK (~40 ms on Linux)
            wbufsize = 1 << 16
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:
                return

            def _send(self, status: int, payload: bytes, headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(payload)

            def do_GET(self) -> None:
                if self.path.split("?")[0].rstrip("/") == "/v1/models":
                    self._send(200, json.dumps({"object": "list", "data": [{"id": "scripted"}]}).encode())
                else:
                    self._send(404, b'{"error": "not found"}')

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                path = self.path.split("?")[0].rstrip("/")
                chat = path == "/v1/chat/completions"
                if not chat and path != "/v1/completions":
                    self._send(404, b'{"error": "not found"}')
                    return
                try:
                    body = json.loads(raw)
                except json.JSONDecodeError:
                    self._send(400, b'{"error": "body is not JSON"}')
                    return
                action = server._decide(body, self.headers.get("Authorization"))
                if server.latency_s:
                    time.sleep(server.latency_s)
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self._act(action, body, chat)

            def _act(self, action: Action, body: dict[str, Any], chat: bool) -> None:
                payload = json.dumps(server._answer(body, chat)).encode()
                if action == "400":  # what vLLM and transformers serve answer to a prompt over the context
                    self._send(400, b'{"error": "prompt is longer than the model context"}')
                elif action == "429":
                    self._send(429, b'{"error": "rate limited"}', {"Retry-After": "0"})
                elif action == "500":
                    self._send(500, b'{"error": "internal error"}')
                elif action == "slow":
                    time.sleep(server.slow_s)
                    self._send(200, payload)
                elif action == "truncated":
                    self._send(200, payload[: len(payload) // 2])
                elif action == "nonjson":
                    self._send(200, b"<html>502 Bad Gateway</html>", {"Content-Type": "text/html"})
                elif action == "cut":
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload[:10])
                    self.wfile.flush()
                    self.close_connection = True
                    with contextlib.suppress(OSError):
                        self.connection.shutdown(2)
                else:
                    self._send(200, payload)

        return Handler


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8011)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before every answer")
    parser.add_argument("--ignore-n", action="store_true", help="answer one choice whatever n says")
    args = parser.parse_args()
    server = ScriptedServer(
        latency_s=args.latency, honour_n=not args.ignore_n, host=args.host, port=args.port
    )
    print(f"serving on {server.url}", flush=True)
    try:
        server._httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server._httpd.server_close()


if __name__ == "__main__":
    main()
