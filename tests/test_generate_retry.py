"""The generate stage against the scripted fault server: samples whose requests failed on
every attempt make the stage incomplete; a plain re-run asks for exactly those samples,
with the same seeds, leaves every written trace alone, and the stages after it re-run. A
generator with too many failed samples fails the stage loudly."""

from __future__ import annotations

import hashlib
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from conftest import run_stage, spec_from
from prefdelta.errors import UserError
from prefdelta.generate.scripted_server import ScriptedServer
from prefdelta.study.runner import plan
from prefdelta.study.stages import BY_NAME
from prefdelta.workspace import Workspace

N_PROBLEMS, SAMPLES = 8, 2
N = N_PROBLEMS * SAMPLES  # samples of one generator
ATTEMPTS = 2  # max_retries 1: a request is tried twice per run
ARITH = {"min_steps": 1, "max_steps": 1, "high": 4, "ops": ["add"]}
Bad = set[tuple[str, int, int]]  # (generator, problem index, seed)


def gen_spec(url: str, per_sample: bool = True, **generate: Any) -> dict[str, Any]:
    """Two served generators; ``per_sample``: one request per sample (``supports_n: false``),
    else one request with ``n`` per problem."""
    client = {
        "base_urls": [url],
        "max_in_flight": 4,
        "max_retries": ATTEMPTS - 1,
        "backoff_base_s": 0.0,
        "backoff_max_s": 0.0,
        "supports_n": False if per_sample else None,
    }
    generators = [
        {
            "id": g,
            "family": "scripted",
            "backend": "openai",
            "model": g,
            "prompt_style": "completion",
            "openai": client,
        }
        for g in ("strong", "weak")
    ]
    return {
        "problems": [{"source": "arith", "split": "pairs", "n": N_PROBLEMS, "seed": 2, "spec": ARITH}],
        "generators": generators,
        "generate": {"samples": SAMPLES, "temperature": 1.0, "max_tokens": 16, "flush_every": 4, **generate},
        "judge": {"kind": "oracle"},
    }


def first_run_faults(ws: Workspace, bad: Bad) -> Callable[[dict[str, Any], int], str]:
    """HTTP 500 on every attempt of the first run (the first ``ATTEMPTS`` times a request
    is seen) for each request of ``bad``, then answers: they fail in the first run only.

    Attempts are counted per generator here: the server's own count is per prompt and
    seed, which both generators share."""
    prompts = list(ws.read_table("problems")["prompt"])
    seen: Counter[tuple[str, str, int]] = Counter()
    lock = threading.Lock()

    def script(body: dict[str, Any], attempt: int) -> str:
        key = (body["model"], body["prompt"], body.get("seed"))
        with lock:
            tries = seen[key]
            seen[key] += 1
        hit = any(
            body["model"] == gen and prompts[i] in body["prompt"] and body.get("seed") == seed
            for gen, i, seed in bad
        )
        return "500" if hit and tries < ATTEMPTS else "ok"

    return script


def problems_ws(root: Path, spec: dict[str, Any]) -> Workspace:
    ws = Workspace(root)
    run_stage(ws, spec_from(spec), "problems")  # no request: the URL is never reached
    return ws


def sent(server: ScriptedServer) -> int:
    return sum(server.actions.values())


def canonical(traces: pd.DataFrame) -> pd.DataFrame:
    """``traces`` without its timing column, in trace id order."""
    return traces.drop(columns="created_at").sort_values("trace_id").reset_index(drop=True)


def shard_bytes(ws: Workspace) -> dict[str, str]:
    return {
        s: hashlib.sha256(ws.shard_path("traces", s).read_bytes()).hexdigest() for s in ws.shards("traces")
    }


def clean_traces(root: Path, per_sample: bool) -> pd.DataFrame:
    """The traces of a run that never met a fault."""
    ws = problems_ws(root, gen_spec("http://127.0.0.1:9/v1", per_sample))
    with ScriptedServer(honour_n=not per_sample) as server:
        run_stage(ws, spec_from(gen_spec(server.url, per_sample)), "generate")
    return canonical(ws.read_table("traces"))


@pytest.mark.parametrize(
    ("per_sample", "bad", "missing"),
    [
        # one request per sample: each failed request is one missing trace
        (True, {("strong", 1, 1), ("strong", 3, 0), ("weak", 2, 1)}, {"strong": 2, "weak": 1}),
        # one request with n per problem: a failed one leaves all its samples missing
        (False, {("strong", 1, 0), ("weak", 2, 0)}, {"strong": 2, "weak": 2}),
    ],
    ids=["per-sample", "n-per-problem"],
)
def test_rerun_requests_only_the_missing_samples(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, per_sample: bool, bad: Bad, missing: dict[str, int]
) -> None:
    from prefdelta.study import runner

    monkeypatch.setattr(runner, "STAGES", (BY_NAME["generate"], BY_NAME["judge"]))  # the plan from here on
    clean = clean_traces(tmp_path / "clean", per_sample)
    ws = problems_ws(tmp_path / "ws", gen_spec("http://127.0.0.1:9/v1", per_sample))
    with ScriptedServer(first_run_faults(ws, bad), honour_n=not per_sample) as server:
        cfg = spec_from(gen_spec(server.url, per_sample))
        first = run_stage(ws, cfg, "generate")
        assert not first.skipped
        before = ws.read_table("traces")
        errors = ws.read_table("generation_errors")
        assert errors.groupby("generator_id").size().to_dict() == missing
        assert (errors["attempts"] == ATTEMPTS).all()
        assert len(before) + len(errors) == 2 * N
        kept = shard_bytes(ws)
        assert not run_stage(ws, cfg, "judge").skipped
        assert len(ws.read_table("judgments")) == len(before)

        gaps = "; ".join(
            f"{g}: {n} of {N} traces missing after generation errors" for g, n in missing.items()
        )
        status = {row.stage: row.status for row in plan(ws, cfg)}
        assert status["generate"] == f"runs (incomplete: {gaps})"
        assert status["judge"] == "runs (its input traces changes)"

        seen = Counter(server.seen)
        second = run_stage(ws, cfg, "generate")
        assert not second.skipped
        resent = server.seen - seen
        n_missing = sum(missing.values())
        # one request per failed one, each with the seed it had: for n requests, seed 0 carries every sample
        assert sent(server) - sum(seen.values()) == len(bad) == sum(resent.values())
        assert {(key, count) for key, count in resent.items()} == {(key, 1) for key in resent}
        assert n_missing == (len(bad) if per_sample else SAMPLES * len(bad))
        after = ws.read_table("traces")
        assert not ws.has_table("generation_errors")
        assert {s: h for s, h in shard_bytes(ws).items() if s in kept} == kept  # written traces untouched
        pd.testing.assert_frame_equal(
            after[after["trace_id"].isin(before["trace_id"])].reset_index(drop=True), before
        )
        pd.testing.assert_frame_equal(canonical(after), clean, check_exact=True)  # as if no fault happened
        gens = ws.read_table("generators").set_index("generator_id")
        assert (gens["n_traces"] == N).all() and (gens["n_errors"] == 0).all()

        judged = run_stage(ws, cfg, "judge")  # downstream re-runs on the whole traces
        assert not judged.skipped and len(ws.read_table("judgments")) == 2 * N

        third = run_stage(ws, cfg, "generate")
        assert third.skipped and sent(server) == sum(seen.values()) + len(bad)
        assert {row.stage: row.status for row in plan(ws, cfg)} == {"generate": "cached", "judge": "cached"}


def test_a_sample_that_fails_again_stays_a_gap(tmp_path: Path) -> None:
    """A request that fails on every run is re-sent once per run, and the stage stays incomplete."""
    ws = problems_ws(tmp_path / "ws", gen_spec("http://127.0.0.1:9/v1"))
    prompt = ws.read_table("problems")["prompt"].iloc[0]
    with ScriptedServer(lambda body, attempt: "500" if prompt in body["prompt"] else "ok") as server:
        cfg = spec_from(gen_spec(server.url))
        run_stage(ws, cfg, "generate")
        assert sent(server) == 2 * N + 2 * SAMPLES * (ATTEMPTS - 1)  # both generators' samples of it
        run_stage(ws, cfg, "generate")
        assert sent(server) == 2 * N + 2 * SAMPLES * (2 * ATTEMPTS - 1)
    assert len(ws.read_table("traces")) == 2 * (N - SAMPLES)
    assert BY_NAME["generate"].gaps(ws, cfg) == (
        f"strong: {SAMPLES} of {N} traces missing after generation errors; "
        f"weak: {SAMPLES} of {N} traces missing after generation errors"
    )


def cli(spec: Path, ws: Workspace) -> None:
    from prefdelta.cli import main

    main(["generate", "-c", str(spec), "-w", str(ws.root)])


def test_too_many_failed_samples_exit_2_then_the_rerun_resumes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = gen_spec("http://127.0.0.1:9/v1")
    ws = problems_ws(tmp_path / "ws", data)
    bad = {("weak", i, s) for i in range(0, N_PROBLEMS, 2) for s in range(SAMPLES)}  # half of weak's
    with ScriptedServer(first_run_faults(ws, bad)) as server:
        spec = tmp_path / "spec.yaml"
        spec.write_text(yaml.safe_dump(gen_spec(server.url)))
        with pytest.raises(SystemExit) as err:
            cli(spec, ws)
        assert err.value.code == 2
        out = capsys.readouterr().err
        msg = out.strip().splitlines()[-1]  # progress lines come before it
        assert msg.startswith("error: ") and "Traceback" not in out
        assert f"generator weak: 50% of its {N} samples are errors ({len(bad)}), above " in msg
        assert "generate.max_error_rate 0.2; most common: " in msg
        assert (
            f"{len(bad)}× " + repr('HTTP 500: {"error": "internal error"}; gave up after 2 attempts') in msg
        )
        assert "strong" not in msg
        traces = ws.read_table("traces")  # the rows it has were written
        assert traces.groupby("generator_id").size().to_dict() == {"strong": N, "weak": N - len(bad)}
        assert len(ws.read_table("generation_errors")) == len(bad)
        assert ws.stage_record("generate") is None  # and the stage is not "done"

        before = sent(server)
        cli(spec, ws)  # exits 0: the gaps are filled
        assert sent(server) == before + len(bad)
    assert len(ws.read_table("traces")) == 2 * N


def test_a_generator_limit_overrides_the_stage_limit_and_neither_touches_the_traces(tmp_path: Path) -> None:
    ws = problems_ws(tmp_path / "ws", gen_spec("http://127.0.0.1:9/v1"))
    with ScriptedServer(lambda body, attempt: "500" if body["model"] == "weak" else "ok") as server:
        data = gen_spec(server.url)
        with pytest.raises(UserError, match=rf"^generator weak: 100% of its {N} samples are errors \({N}\)"):
            run_stage(ws, spec_from(data), "generate")
        data["generators"][1]["max_error_rate"] = 1.0  # overrides generate.max_error_rate
        before = sent(server)
        assert not run_stage(ws, spec_from(data), "generate").skipped
        assert sent(server) == before + N * ATTEMPTS  # weak's failed samples, asked again
        kept = shard_bytes(ws)
        data["generate"]["max_error_rate"] = 0.5  # changed limits: strong's traces stay as they are
        data["generators"][0]["max_error_rate"] = 0.1
        before = sent(server)
        run_stage(ws, spec_from(data), "generate")
        assert sent(server) == before + N * ATTEMPTS
        assert {s: h for s, h in shard_bytes(ws).items() if s in kept} == kept
    counts = ws.read_table("generators").set_index("generator_id")[["n_traces", "n_errors"]]
    assert counts.to_dict("index") == {
        "strong": {"n_traces": N, "n_errors": 0},
        "weak": {"n_traces": 0, "n_errors": N},
    }
    for section, value in (("generate", 1.5), ("generators", -0.1)):
        bad = gen_spec("http://x/v1")
        target = bad["generate"] if section == "generate" else bad["generators"][0]
        target["max_error_rate"] = value
        with pytest.raises(UserError, match="max_error_rate"):
            spec_from(bad)
