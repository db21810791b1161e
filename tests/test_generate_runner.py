"""Generation runs: provenance columns, resume exactly once after a kill, the arith stage."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd
import pytest

from prefdelta.generate.base import Request, Result
from prefdelta.generate.config import SamplingSpec
from prefdelta.generate.hf import HFBackend
from prefdelta.generate.runner import ERRORS, TRACES, GeneratorRun, generate_traces, trace_id
from prefdelta.generate.scripted_server import ScriptedServer
from prefdelta.workspace import Workspace
from prefdelta.worlds import arith


def _arith_problems(n: int) -> pd.DataFrame:
    rows = [
        {
            "problem_id": p.problem_id,
            "source": "arith",
            "split": "pairs",
            "prompt": arith.prompt_text(p.text),
            "problem_text": p.text,
            "reference_answer": str(p.answer),
            "reference_solution": arith.reference_trace(p),
            "meta": json.dumps(p.to_meta()),
        }
        for p in arith.make_problems(arith.ArithSpec(), n, seed=5, prefix="pairs")
    ]
    return pd.DataFrame(rows)


class _Killed(Exception):
    pass


class _DiesAfter:
    """Wraps a backend; raises after ``k`` results, like a process killed mid-run."""

    def __init__(self, inner, k: int) -> None:
        self.inner, self.k, self.name = inner, k, inner.name
        self.requested: list[Request] = []
        self.count = 0  # over all calls: the runner calls once per slice

    def generate(self, requests: Sequence[Request], on_result: Callable[[Result], None] | None = None):
        self.requested.extend(requests)

        def cb(r: Result) -> None:
            if self.count >= self.k:
                raise _Killed
            self.count += 1
            assert on_result is not None
            on_result(r)

        return self.inner.generate(requests, on_result=cb)


def test_resume_after_kill_exactly_once(tiny_model_dir: Path, tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws")
    problems = _arith_problems(12)
    sampling = SamplingSpec(samples=3, temperature=0.9, max_tokens=8, seed=1)
    hf = HFBackend(tiny_model_dir, device="cpu", batch_size=5)
    dying = _DiesAfter(hf, k=17)
    with pytest.raises(_Killed):
        generate_traces(ws, GeneratorRun("tiny", dying, "tiny", sampling), problems, flush_every=4)
    partial = ws.read_table(TRACES)
    assert 0 < len(partial) <= 17 and partial["trace_id"].is_unique
    again = _DiesAfter(hf, k=10**6)
    traces = generate_traces(ws, GeneratorRun("tiny", again, "tiny", sampling), problems, flush_every=4)
    table = ws.read_table(TRACES)
    assert len(table) == len(traces) == 36 and table["trace_id"].is_unique
    expected = {trace_id("tiny", p, s, 1) for p in problems["problem_id"] for s in range(3)}
    assert set(table["trace_id"]) == expected
    # only the missing items were asked for the second time
    assert sum(r.sampling.n for r in again.requested) == 36 - len(partial)
    # provenance
    row = table.iloc[0]
    assert row["model"] == "tiny" and row["backend"] == "hf" and row["template"] == "arith"
    assert row["prompt_style"] == "completion" and row["seed"] == 1
    assert json.loads(row["sampling"]) == {
        "max_tokens": 8,
        "samples": 3,
        "stop": [],
        "temperature": 0.9,
        "top_p": 1.0,
    }
    assert (table["n_tokens"] > 0).all() and (table["prompt_tokens"] > 0).all()
    # nothing left to do: a third run asks for nothing
    idle = _DiesAfter(hf, k=0)
    generate_traces(ws, GeneratorRun("tiny", idle, "tiny", sampling), problems)
    assert idle.requested == []
    # a changed config replaces this generator's shards
    generate_traces(ws, GeneratorRun("tiny", hf, "tiny", SamplingSpec(samples=1, max_tokens=4)), problems)
    assert len(ws.read_table(TRACES)) == 12


def test_errors_are_rows_and_retried_on_rerun(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws")
    problems = _arith_problems(10)
    bad = set(problems["prompt"][:3])
    state = {"healthy": False}

    def script(body: dict, attempt: int) -> str:
        return "500" if body.get("prompt") in bad and not state["healthy"] else "ok"

    from prefdelta.generate.openai import OpenAIBackend

    sampling = SamplingSpec(samples=2, temperature=0.5, max_tokens=8)
    with ScriptedServer(script, honour_n=False) as server:
        backend = OpenAIBackend(server.url, "m", max_retries=1, backoff_base_s=0.001)
        run = GeneratorRun("served", backend, "m", sampling, template="raw")
        traces = generate_traces(ws, run, problems)
        assert len(traces) == 14
        errors = ws.read_table(ERRORS)
        assert len(errors) == 6 and errors["error"].str.contains("HTTP 500").all()
        assert set(errors["trace_id"]).isdisjoint(traces["trace_id"])
        state["healthy"] = True
        traces = generate_traces(ws, run, problems)
    assert len(traces) == 20 and traces["trace_id"].is_unique
    assert not ws.has_table(ERRORS) or len(ws.read_table(ERRORS)) == 0
    assert set(traces["sample"]) == {0, 1}


class _Stutters:
    """A faulty backend that reports every result twice."""

    def __init__(self, inner) -> None:
        self.inner, self.name = inner, inner.name

    def generate(self, requests: Sequence[Request], on_result: Callable[[Result], None] | None = None):
        assert on_result is not None

        def twice(r: Result) -> None:
            on_result(r)
            on_result(r)

        return self.inner.generate(requests, on_result=twice)


def test_duplicate_results_do_not_duplicate_traces(tmp_path: Path) -> None:
    from prefdelta.generate.openai import OpenAIBackend

    ws = Workspace(tmp_path / "ws")
    with ScriptedServer() as server:
        backend = _Stutters(OpenAIBackend(server.url, "m"))
        traces = generate_traces(
            ws, GeneratorRun("g", backend, "m", SamplingSpec(samples=2)), _arith_problems(5)
        )
    assert len(traces) == 10 and traces["trace_id"].is_unique


def test_hf_resume_gives_the_same_texts_as_a_clean_run(tiny_model_dir: Path, tmp_path: Path) -> None:
    problems = _arith_problems(8)
    sampling = SamplingSpec(samples=3, temperature=1.0, max_tokens=8, seed=2)
    hf = HFBackend(tiny_model_dir, device="cpu", batch_size=4)
    clean_ws = Workspace(tmp_path / "clean")
    clean = generate_traces(clean_ws, GeneratorRun("t", hf, "t", sampling), problems, flush_every=6)
    ws = Workspace(tmp_path / "killed")
    with pytest.raises(_Killed):  # dies right after the first slice (2 problems x 3 samples) was written
        generate_traces(ws, GeneratorRun("t", _DiesAfter(hf, k=6), "t", sampling), problems, flush_every=6)
    assert len(ws.read_table(TRACES)) == 6
    resumed = generate_traces(ws, GeneratorRun("t", hf, "t", sampling), problems, flush_every=6)
    key = ["trace_id", "text"]
    pd.testing.assert_frame_equal(
        resumed.sort_values("trace_id")[key].reset_index(drop=True),
        clean.sort_values("trace_id")[key].reset_index(drop=True),
    )


@pytest.mark.parametrize("chat", [False, True], ids=["completions", "chat"])
def test_traces_store_the_prompt_as_sent(tmp_path: Path, chat: bool) -> None:
    """``prompt_text`` / ``prompt_messages`` are the request's prompt or messages, exactly."""
    from prefdelta.generate.openai import OpenAIBackend
    from prefdelta.generate.prompts import load_template

    ws = Workspace(tmp_path / "ws")
    problems = _arith_problems(3)
    seen: list[dict] = []

    def script(body: dict, attempt: int) -> str:
        seen.append(body)
        return "ok"

    with ScriptedServer(script) as server:
        run = GeneratorRun("g", OpenAIBackend(server.url, "m"), "m", SamplingSpec(samples=2), chat=chat)
        traces = generate_traces(ws, run, problems).set_index("problem_id")
    stored = ws.read_table(TRACES).set_index("trace_id")
    template = load_template("arith")
    for row in problems.itertuples():
        mine = traces.loc[[row.problem_id]]
        assert len(mine) == 2
        texts, messages = set(mine["prompt_text"].map(repr)), set(mine["prompt_messages"].map(repr))
        if chat:  # the server applied its own chat template: the messages are what was sent
            sent = [b["messages"] for b in seen if b["messages"][-1]["content"].endswith(row.prompt)]
            assert texts == {"None"} and messages == {repr(json.dumps(sent[0]))}
            assert json.loads(mine["prompt_messages"].iloc[0]) == list(template.messages(row.prompt))
        else:
            assert texts == {repr(template.text(row.prompt))} and messages == {"None"}
            assert any(b["prompt"] == mine["prompt_text"].iloc[0] for b in seen)
    assert {"prompt_text", "prompt_messages"} <= set(stored.columns)


def test_hf_chat_traces_store_the_chat_template_rendering(tiny_model_dir: Path, tmp_path: Path) -> None:
    import shutil

    from transformers import AutoTokenizer

    copy = tmp_path / "with-chat"
    shutil.copytree(tiny_model_dir, copy)
    tok = AutoTokenizer.from_pretrained(copy)
    tok.chat_template = (
        "{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}[assistant] "
    )
    tok.save_pretrained(copy)
    problems = _arith_problems(2)
    run = GeneratorRun(
        "h",
        HFBackend(copy, device="cpu"),
        "m",
        SamplingSpec(samples=1, max_tokens=4),
        chat=True,
        template="raw",
    )
    traces = generate_traces(Workspace(tmp_path / "ws"), run, problems).set_index("problem_id")
    for row in problems.itertuples():
        messages = json.loads(traces.loc[row.problem_id, "prompt_messages"])
        assert messages == [{"role": "user", "content": messages[-1]["content"]}]
        assert row.prompt in messages[-1]["content"]
        assert traces.loc[row.problem_id, "prompt_text"] == tok.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True
        )
        assert traces.loc[row.problem_id, "prompt_text"].startswith("[user] ")
