"""The openai backend against a real `transformers serve` server holding a tiny local model."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from prefdelta.generate.base import Request, Sampling
from prefdelta.generate.openai import OpenAIBackend

CHAT_TEMPLATE = (
    "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant: {% endif %}"
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def transformers_serve(model_dir: Path, log: Path) -> Iterator[str]:
    """`transformers serve <folder>` on 127.0.0.1:<free port>; yields the /v1 base URL; stops it."""
    exe = Path(sys.executable).with_name("transformers")
    if not exe.exists():
        pytest.skip("`transformers` CLI not installed (pip install 'transformers[serving]')")
    port = _free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    cmd = [str(exe), "serve", str(model_dir), "--host", "127.0.0.1", "--port", str(port), "--device", "cpu"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise AssertionError(
                    f"transformers serve exited with {proc.returncode}:\n{log.read_text()[-2000:]}"
                )
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"transformers serve not healthy after 120 s:\n{log.read_text()[-2000:]}"
                )
            time.sleep(0.3)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@pytest.mark.integration
def test_openai_backend_against_transformers_serve(tiny_model_dir: Path, tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    model_dir = tmp_path / "tiny-chat"
    shutil.copytree(tiny_model_dir, model_dir)
    tok = AutoTokenizer.from_pretrained(model_dir)
    tok.chat_template = CHAT_TEMPLATE  # the arith tokenizer has none; chat needs one
    tok.save_pretrained(model_dir)

    with transformers_serve(model_dir, tmp_path / "serve.log") as url:
        backend = OpenAIBackend(url, str(model_dir), max_in_flight=2, timeout_s=60, max_retries=1)
        requests = [
            Request("p0", prompt="Ann has 7 apples.\n", sampling=Sampling(temperature=0.0, max_tokens=6)),
            Request(
                "p1",
                prompt="Ben has 3 pens.\n",
                sampling=Sampling(temperature=1.0, max_tokens=6, n=2, seed=4),
            ),
            Request(
                "c0",
                messages=({"role": "user", "content": "Ann has 7 apples."},),
                sampling=Sampling(max_tokens=6),
            ),
        ]
        results = backend.generate(requests)
        models = httpx.get(f"{url}/models", timeout=10)
    assert models.status_code == 200
    assert [(r.request_id, r.index) for r in results] == [("p0", 0), ("p1", 0), ("p1", 1), ("c0", 0)]
    for r in results:
        assert r.error is None, r.error
        assert r.finish_reason in ("stop", "length")
        assert 0 < r.completion_tokens <= 6 and r.prompt_tokens > 0
    # transformers serve ignores `n`: the second sample came from a second request
    assert url.rstrip("/") in backend._no_n
    # the chat prompt went through the chat template: "user: ...\nassistant: " is longer than the text
    chat = results[-1]
    assert chat.prompt_tokens > tok("Ann has 7 apples.")["input_ids"].__len__()
    # greedy completions through the server equal the in-process hf backend's
    from prefdelta.generate.hf import HFBackend

    [local] = HFBackend(model_dir, device="cpu").generate([requests[0]])
    assert results[0].text == local.text
