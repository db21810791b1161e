"""The LLM judge end to end over HTTP: a scripted JSON server and a real `transformers serve`."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from conftest import run_stage, spec_from
from prefdelta.judge.config import LLMJudgeSettings
from prefdelta.judge.dimensions import DIMENSIONS
from prefdelta.judge.rubric import load_rubric, render_prompt

pytestmark = pytest.mark.integration


def scripted_scores(user_message: str) -> dict[str, int]:
    """What the scripted judge answers: scores fixed by a hash of the prompt it was sent."""
    digest = hashlib.sha256(user_message.encode()).digest()
    return {d: 1 + digest[i] % 5 for i, d in enumerate(DIMENSIONS)}


class JsonJudgeServer:
    """An OpenAI-compatible chat endpoint that answers every request with valid judge JSON."""

    def __init__(self) -> None:
        self.bodies: list[dict] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                server.bodies.append(body)
                user = body["messages"][-1]["content"]
                if body["response_format"]["json_schema"]["name"] == "pairwise_judgment":
                    text = json.dumps(dict.fromkeys(DIMENSIONS, 1))  # always prefers the first shown
                else:
                    text = json.dumps(scripted_scores(user) | {"rationale": "scripted"})
                payload = json.dumps(
                    {
                        "id": "x",
                        "object": "chat.completion",
                        "choices": [
                            {
                                "index": 0,
                                "message": {"role": "assistant", "content": text},
                                "finish_reason": "stop",
                            }
                        ],
                        "usage": {"prompt_tokens": 10, "completion_tokens": 10},
                    }
                ).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self) -> JsonJudgeServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def test_scripted_json_server_scores_exact_and_cache_makes_rerun_free(
    tmp_path: Path, shared_datasets: Path
) -> None:
    from test_judge_stage import gsm8k_workspace

    ws = gsm8k_workspace(tmp_path / "ws", shared_datasets, n_problems=3)
    with JsonJudgeServer() as server:
        settings = LLMJudgeSettings(model="judge-model", base_url=server.url, repeats=2, judge_id="scripted")
        cfg = spec_from({"judge": {"kind": "llm", "llm": settings.model_dump()}})
        run_stage(ws, cfg, "judge")
        first = ws.read_table("judgments")
        sent = len(server.bodies)
        assert sent == 12 * 2
        assert all(b["response_format"]["type"] == "json_schema" for b in server.bodies)
        assert all(b["temperature"] == 0.6 and b["model"] == "judge-model" for b in server.bodies)

        problems = ws.read_table("problems").set_index("problem_id")
        traces = ws.read_table("traces").set_index("trace_id")
        rubric = load_rubric()
        for row in first.itertuples():
            t = traces.loc[row.trace_id]
            p = problems.loc[t["problem_id"]]
            want = scripted_scores(render_prompt(rubric, p["prompt"], t["text"], p["reference_answer"]))
            assert {d: getattr(row, d) for d in DIMENSIONS} == {d: float(v) for d, v in want.items()}
        assert first["error"].isna().all()

        run_stage(ws, cfg, "judge", force=True)  # a full re-run: every reply comes from the cache
        assert len(server.bodies) == sent
        second = ws.read_table("judgments")
        pd_equal = second.drop(columns=["raw"]).equals(first.drop(columns=["raw"]))
        assert pd_equal


def test_pairwise_cli_and_position_bias_audit(tmp_path: Path, shared_datasets: Path) -> None:
    import pandas as pd
    import yaml

    from prefdelta.cli import main
    from test_judge_stage import gsm8k_workspace

    ws = gsm8k_workspace(tmp_path / "ws", shared_datasets, n_problems=4)
    traces = ws.read_table("traces")
    by_gen = traces.set_index(["problem_id", "generator_id"])["trace_id"]
    pids = sorted(set(traces["problem_id"]))
    ws.write_table(
        "pairs",
        pd.DataFrame(
            {
                "pair_id": [f"p{i}" for i in range(len(pids))],
                "problem_id": pids,
                "chosen_trace_id": [by_gen[(p, "175b_verification")] for p in pids],
                "rejected_trace_id": [by_gen[(p, "6b_finetuning")] for p in pids],
            }
        ),
    )
    with JsonJudgeServer() as server:
        data = {"judge": {"kind": "llm", "llm": {"model": "m", "base_url": server.url, "repeats": 1}}}
        cfg_path = tmp_path / "study.yaml"
        cfg_path.write_text(yaml.safe_dump(data))
        main(["judge", "pairwise", "-c", str(cfg_path), "-w", str(ws.root)])
        assert len(server.bodies) == 2 * len(pids)
        ws.write_table("judgments", ws.read_table("traces")[["trace_id"]].assign(
            **dict.fromkeys(DIMENSIONS, 3.0), outcome=ws.read_table("traces")["is_correct"], error=None
        ))  # fmt: skip
        out = tmp_path / "audit"
        main(["judge", "audit", "-w", str(ws.root), "--reference-kind", "correctness",
              "--pairwise", "pairwise_judgments", "--out", str(out)])  # fmt: skip
    pos = pd.read_csv(out / "position_bias.csv")
    assert (pos["first_position_rate"] == 1.0).all() and (pos["order_swap_agreement"] == 0.0).all()
    assert (pos["n_pairs"] == len(pids)).all()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory, arith_tokenizer) -> Path:
    """The tiny random-init Llama of conftest, with a context long enough for the judge's
    rubric prompt (about 2,700 tokens of the arith tokenizer): `transformers serve` (5.25+)
    answers HTTP 400 to a prompt longer than the model's positions."""
    import torch
    from transformers import AutoModelForCausalLM

    from prefdelta.checkpoints import save_model
    from prefdelta.zoo.config import ZooModelSpec
    from prefdelta.zoo.models import make_config

    torch.manual_seed(0)
    spec = ZooModelSpec(id="tiny", family="llama", hidden=32, layers=1, heads=2)
    model = AutoModelForCausalLM.from_config(make_config(spec, arith_tokenizer, max_len=4096))
    out = tmp_path_factory.mktemp("models") / "tiny-llama-long"
    save_model(model, arith_tokenizer, out)
    return out


@pytest.fixture(scope="module")
def tiny_serve(tiny_model_dir: Path) -> Iterator[str]:
    """`transformers serve` with the random-init tiny Llama (completions work; it has no chat template)."""
    port = _free_port()
    exe = Path(sys.executable).with_name("transformers")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    cmd = [
        str(exe),
        "serve",
        str(tiny_model_dir),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--device",
        "cpu",
    ]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"transformers serve exited: {proc.stderr.read()[-2000:] if proc.stderr else ''}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        else:
            pytest.fail("transformers serve did not become healthy in 120 s")
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_transformers_serve_tiny_model_garbage_becomes_error_rows(
    tiny_serve: str, tiny_model_dir: Path, tmp_path: Path
) -> None:
    from prefdelta.generate.openai import OpenAIBackend
    from prefdelta.judge.cache import ResponseCache
    from prefdelta.judge.llm import JudgeItem, LLMJudge, LLMJudgeOptions

    items = [JudgeItem(f"t{i}", "What is 3 + 4?", f"3 + 4 = <<3+4=7>>7\n#### {7 + i}", "7") for i in range(2)]
    backend = OpenAIBackend(tiny_serve, str(tiny_model_dir), max_in_flight=2, max_retries=0, timeout_s=60)
    cache = ResponseCache(tmp_path / "c.sqlite")

    # completions: the protocol works (HTTP 200, real text), but a random model's text is no judgment
    opts = LLMJudgeOptions(repeats=1, retries=1, max_tokens=12, chat=False)
    df = LLMJudge(backend, load_rubric(), "tiny", cache, opts).score(items)
    assert len(df) == 2 and df["error"].str.startswith("unparseable judge output").all()
    assert df[list(DIMENSIONS)].isna().all().all()
    assert (df["raw"].str.len() > 0).all() and (df["attempts"] == 2).all()
    assert len(cache) == 4  # every reply cached, unparseable ones included

    # chat: the tiny tokenizer has no chat template, the server refuses (HTTP 400) -> error rows
    # that no re-run re-sends (the same request is refused again), not scores
    opts = LLMJudgeOptions(repeats=1, retries=0, max_tokens=12, chat=True)
    df = LLMJudge(backend, load_rubric(), "tiny", cache, opts).score(items[:1])
    assert df["error"].str.startswith("request refused: HTTP 400").all() and df["factuality"].isna().all()


def test_transformers_serve_judge_stage_end_to_end(
    tiny_serve: str, tiny_model_dir: Path, tmp_path: Path, shared_datasets: Path
) -> None:
    """The judge stage with kind llm against a real server: every row an error with its raw text,
    written before the stage fails for its error share (judge.max_error_rate)."""
    from prefdelta.errors import UserError
    from test_judge_stage import gsm8k_workspace

    ws = gsm8k_workspace(tmp_path / "ws", shared_datasets, n_problems=1)
    settings = LLMJudgeSettings(
        model=str(tiny_model_dir),
        base_url=tiny_serve,
        chat=False,
        repeats=1,
        retries=0,
        max_tokens=16,
        max_in_flight=2,
    )
    cfg = spec_from({"judge": {"kind": "llm", "llm": settings.model_dump()}})
    with pytest.raises(
        UserError, match=r"judge llm:\S+: 100% of its 4 judgments are errors.*unparseable judge"
    ):
        run_stage(ws, cfg, "judge")
    df = ws.read_table("judgments")
    assert len(df) == 4 and df["error"].str.startswith("unparseable judge output").all()
    assert df[list(DIMENSIONS)].isna().all().all() and (df["raw"].str.len() > 0).all()
    assert df["outcome"].tolist() == ws.read_table("traces")["is_correct"].tolist()  # outcome is exact anyway
