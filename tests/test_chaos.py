"""The chaos suite: a shrunk study killed at random points, run twice from scratch, fed faults.

``make chaos`` runs these alone (``pytest -m chaos``); ``make test`` runs them with the
rest. Each test compares whole workspaces — every table, every weight file — against an
uninterrupted run, so a resume that loses, duplicates or silently changes anything fails.

Only columns that measure time are left out of the comparison (``created_at``,
``train_seconds``, timing keys inside ``runs.metrics``) and, against the fault server,
the traces' ``attempts`` (which count the faults): everything else, floats included,
must be equal.

``CHAOS_SEED`` picks the kill times (printed on failure, so a failing schedule reruns).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from prefdelta.generate import scripted_server
from prefdelta.generate.scripted_server import Script, ScriptedServer, request_key
from scripted_judge import sampled_scores

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "tests" / "data" / "tiny_study.yaml"
PREFDELTA = [sys.executable, "-m", "prefdelta.cli.entry"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}

pytestmark = [pytest.mark.integration, pytest.mark.chaos]

TIMING_COLUMNS = {"created_at", "train_seconds"}
TIMING_KEYS = ("seconds", "per_s", "elapsed", "wall")


def run_study(ws: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*PREFDELTA, "run", "-c", str(TINY), "-w", str(ws)],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=900,
    )


def _untimed_metrics(text: object) -> object:
    if not isinstance(text, str):
        return text
    try:
        data = json.loads(text)
    except ValueError:
        return text
    if isinstance(data, dict):
        data = {k: v for k, v in data.items() if not any(t in k for t in TIMING_KEYS)}
    return json.dumps(data, sort_keys=True)


def tables(ws: Path) -> dict[str, pd.DataFrame]:
    """Every table of ``ws``, without timing columns, in a canonical row order."""
    from prefdelta.workspace import Workspace

    workspace = Workspace(ws)
    out: dict[str, pd.DataFrame] = {}
    for folder in sorted((ws / "tables").iterdir()):
        df = workspace.read_table(folder.name).drop(columns=list(TIMING_COLUMNS), errors="ignore")
        if "metrics" in df.columns:
            df["metrics"] = df["metrics"].map(_untimed_metrics)
        cols = list(df.columns)
        keyed = df.astype(str)
        out[folder.name] = df.loc[keyed.sort_values(cols).index].reset_index(drop=True)
    return out


def weights(ws: Path) -> dict[str, str]:
    """sha256 of every weight file under models/ and runs/, by path relative to ``ws``."""
    return {
        str(p.relative_to(ws)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(ws.glob("**/*.safetensors"))
    }


def assert_same_workspace(got: Path, want: Path) -> None:
    a, b = tables(got), tables(want)
    assert sorted(a) == sorted(b)
    for name in a:
        pd.testing.assert_frame_equal(a[name], b[name], check_exact=True, obj=f"table {name}")
    assert weights(got) == weights(want)


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, float]:
    ws = tmp_path_factory.mktemp("chaos-clean")
    start = time.perf_counter()
    proc = run_study(ws)
    assert proc.returncode == 0, proc.stderr
    return ws, time.perf_counter() - start


def test_two_fresh_runs_are_identical(clean: tuple[Path, float], tmp_path: Path) -> None:
    proc = run_study(tmp_path / "again")
    assert proc.returncode == 0, proc.stderr
    assert_same_workspace(tmp_path / "again", clean[0])


def test_kill9_at_random_points_resumes_to_the_same_workspace(
    clean: tuple[Path, float], tmp_path: Path
) -> None:
    seed = int(os.environ.get("CHAOS_SEED", "20261203"))
    rng = random.Random(seed)
    ws = tmp_path / "killed"
    interrupted: list[str] = []
    for _ in range(5):
        delay = rng.uniform(2.0, 0.6 * clean[1])
        proc = subprocess.Popen(
            [*PREFDELTA, "run", "-c", str(TINY), "-w", str(ws)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=ENV,
            start_new_session=True,  # its own process group: the kill takes the training workers too
        )
        try:
            proc.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            done = sorted(p.stem for p in (ws / "stages").glob("*.json")) if (ws / "stages").exists() else []
            interrupted.append(f"killed at {delay:.1f}s after stages {done}")
    assert interrupted, f"no run was interrupted (CHAOS_SEED={seed}): the test would prove nothing"
    final = run_study(ws)
    assert final.returncode == 0, f"CHAOS_SEED={seed}: {interrupted}\n{final.stderr}"
    assert not list(ws.glob("**/.*.tmp-*")), "a resumed run leaves no temp files"
    assert not list((ws / "models").glob("*.tmp*"))
    try:
        assert_same_workspace(ws, clean[0])
    except AssertionError as exc:
        raise AssertionError(f"CHAOS_SEED={seed}, {interrupted}: {exc}") from exc


# ---- faults: generation and judging served by the scripted fault server ------------------

FAULTS = ("429", "500", "slow", "truncated", "nonjson", "cut")
FAULT_SHARE = 0.3
FAULTY_ATTEMPTS = 3  # attempts 0-2 of a request may fault; generation retries 4 times, so it recovers
JUDGE_MODEL = "judge"
STAGE_COMMANDS = ("problems", "zoo", "generate", "judge", "pairs", "select")
ARITH = {"min_steps": 1, "max_steps": 1, "high": 4, "ops": ["add"]}


def fault_script(body: dict[str, Any], attempt: int) -> str:
    """~30% of requests fault, with every fault action of the server, deterministically in
    the request key and the attempt (so the same schedule replays on every run)."""
    if attempt >= FAULTY_ATTEMPTS:
        return "ok"
    digest = hashlib.sha256(f"{request_key(body)}|{attempt}".encode()).digest()
    if int.from_bytes(digest[:4], "big") >= FAULT_SHARE * 2**32:
        return "ok"
    return FAULTS[digest[4] % len(FAULTS)]


def fault_spec(url: str) -> dict[str, Any]:
    """Two served generators (``strong`` always right, ``weak`` right on about half the
    problems) and a served LLM judge, all at ``url``; timeouts under the server's slow answer."""
    client = {
        "base_urls": [url],
        "max_in_flight": 8,
        "timeout_s": 1.5,
        "max_retries": 4,
        "backoff_base_s": 0.01,
        "backoff_max_s": 0.05,
    }
    generators = [
        {"id": g, "family": "scripted", "params": p, "backend": "openai", "model": g, "openai": client}
        for g, p in (("strong", 2e9), ("weak", 1e9))
    ]
    llm = {
        "model": JUDGE_MODEL,
        "base_url": url,
        "repeats": 2,
        "timeout_s": 1.5,
        "transport_retries": 1,  # a request faulting twice is a gap the next run fills
        "max_in_flight": 8,
    }
    return {
        "name": "chaos-faults",
        "threads": 1,
        "problems": [{"source": "arith", "split": "pairs", "n": 12, "seed": 2, "spec": ARITH}],
        "generators": generators,
        "generate": {"samples": 2, "temperature": 1.0, "max_tokens": 48},
        "judge": {"kind": "llm", "id": "llm:scripted", "llm": llm},
        "pairs": {"per_problem": 2},
        "select": {"key": "step_coherence", "fraction": 0.5},
    }


@pytest.fixture(scope="module")
def answers(tmp_path_factory: pytest.TempPathFactory) -> dict[str, int]:
    """Each pair problem's prompt -> its answer (what the scripted generators know)."""
    from conftest import run_stage, spec_from
    from prefdelta.workspace import Workspace

    ws = Workspace(tmp_path_factory.mktemp("chaos-problems"))
    # the problems stage alone: the spec's URL is never reached
    run_stage(ws, spec_from(fault_spec("http://127.0.0.1:9/v1")), "problems")
    problems = ws.read_table("problems")
    return {p: int(a) for p, a in zip(problems["prompt"], problems["reference_answer"], strict=True)}


@pytest.fixture
def scripted_models(monkeypatch: pytest.MonkeyPatch, answers: dict[str, int]) -> None:
    """The scripted server answers as the judge (valid judge JSON) or as a generator: a
    worked answer, ``strong`` always right, ``weak`` off by one on about half the problems,
    the text depending on the sample (``seed + index``) so that samples differ."""

    def reply(body: dict[str, Any], index: int) -> str:
        if body.get("model") == JUDGE_MODEL:
            return sampled_scores(body, index)
        problem = body["messages"][-1]["content"]
        answer = answers[problem]
        if body.get("model") == "weak" and hashlib.sha256(problem.encode()).digest()[0] % 2:
            answer += 1
        return f"Adding the given numbers (draw {int(body.get('seed') or 0) + index}).\n#### {answer}"

    monkeypatch.setattr(scripted_server, "echo_text", reply)


def run_until_complete(
    server: ScriptedServer, ws: Path, spec: Path, capsys: pytest.CaptureFixture[str]
) -> int:
    """Run the stage commands in order, as a user would, until the plan has nothing left to
    do; a command that exits 2 ends its pass. Returns the number of passes."""
    from prefdelta.cli import main
    from prefdelta.study.runner import plan
    from prefdelta.study.spec import load_spec
    from prefdelta.workspace import Workspace

    cfg = load_spec(spec, ())
    for passes in range(1, 7):
        for command in STAGE_COMMANDS:
            try:
                main([command, "-c", str(spec), "-w", str(ws)])
            except SystemExit as exc:
                assert exc.code == 2, capsys.readouterr().err
                break
        capsys.readouterr()
        status = {row.stage: row.status for row in plan(Workspace(ws), cfg)}
        if all(status[s] == "cached" for s in STAGE_COMMANDS):
            return passes
    raise AssertionError(f"still incomplete after {passes} passes: {status}; served {dict(server.actions)}")


def study_under(
    script: Script | None, ws: Path, capsys: pytest.CaptureFixture[str]
) -> tuple[int, Counter[str]]:
    """Run the study against a fresh scripted server; (passes, actions served)."""
    with ScriptedServer(script, slow_s=4.0) as server:
        spec = ws.parent / f"{ws.name}.yaml"
        spec.write_text(yaml.safe_dump(fault_spec(server.url)))
        passes = run_until_complete(server, ws, spec, capsys)
    return passes, server.actions


@pytest.mark.usefixtures("scripted_models")
def test_thirty_percent_faults_on_generation_and_judging_change_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A shrunk study whose two generators and LLM judge are served over HTTP by the
    scripted fault server, ~30% of requests failing (429, 500, slow past the timeout,
    truncated JSON, an HTML page, a connection cut mid-body), ends — after the re-runs a
    user would do — with the same tables, value for value, as the study against a server
    that never faults: nothing lost, nothing duplicated.

    The study stops at select (the stage commands problems … select; ``prefdelta run``
    would go on to train a student, which offline means a zoo model trained here, tens
    of seconds that no fault reaches): the faults touch generation and judging only,
    everything after select is a function of the tables compared here, and the kill -9
    test above covers training and evaluation. Generation recovers within its retries
    (the script faults three attempts at most, the client makes five); a generation
    error left after them would be a gap the next pass fills (tests/test_generate_retry.py). The judge
    retries once, so a request that faults twice is a gap (or, above
    ``judge.max_error_rate``, an exit 2), and the next pass re-runs the judge stage for
    it and then pairs and select on the whole judgments.

    Left out of the comparison besides timing: the ``attempts`` of ``traces`` (the
    retries of the faults themselves).
    """
    clean_passes, clean_actions = study_under(None, tmp_path / "clean", capsys)
    assert clean_passes == 1 and set(clean_actions) == {"ok"}
    passes, actions = study_under(fault_script, tmp_path / "faulty", capsys)

    served = sum(actions.values())
    faults = served - actions["ok"]
    assert set(actions) == {"ok", *FAULTS}, f"every fault action was served: {dict(actions)}"
    assert faults >= 0.2 * served, f"{faults} faults in {served} responses: {dict(actions)}"
    assert passes >= 2, "no judge request faulted twice: the re-run of a stage with gaps went untested"

    got, want = tables(tmp_path / "faulty"), tables(tmp_path / "clean")
    assert (got["traces"]["attempts"] > 1).any()  # the generation faults were retried
    for t in (got, want):
        t["traces"] = t["traces"].drop(columns="attempts")
    assert sorted(got) == sorted(want)
    assert len(want["pairs"]) and len(want["selections"]), "the study made pairs and chose some"
    for name in got:
        pd.testing.assert_frame_equal(got[name], want[name], check_exact=True, obj=f"table {name}")
    print(f"faults: {faults} of {served} responses ({dict(actions)}), {passes} passes")
