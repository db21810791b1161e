"""`prefdelta problems` and `prefdelta generate --generators`: real problems, an external backend,
SIGKILL and resume."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from prefdelta.cli import main
from prefdelta.generate.runner import trace_id
from prefdelta.generate.scripted_server import ScriptedServer
from prefdelta.workspace import Workspace

EXE = [sys.executable, "-c", "from prefdelta.cli import main; main()"]


def _gens(path: Path, url: str, **openai: object) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "sampling": {"samples": 2, "temperature": 0.7, "max_tokens": 32, "seed": 3},
                "generators": [
                    {
                        "id": "served-a",
                        "family": "scripted",
                        "params": 7e9,
                        "backend": "openai",
                        "model": "scripted",
                        "openai": {"base_urls": [url], "max_in_flight": 2, **openai},
                    }
                ],
            }
        )
    )
    return path


def test_problems_and_run(tmp_path: Path, shared_datasets: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ws_dir = tmp_path / "ws"
    main(["problems", "--source", "gsm8k", "--data-dir", str(shared_datasets), "--n", "6", "-w", str(ws_dir)])
    assert len(Workspace(ws_dir).read_table("problems")) == 6
    two = "problems=[{source: gsm8k, n: 6}, {source: math500, n: 4, sample: first}]"
    main(["problems", "--data-dir", str(shared_datasets), "--set", two, "-w", str(ws_dir)])
    ws = Workspace(ws_dir)
    assert len(ws.read_table("problems")) == 10
    with ScriptedServer() as server:
        main(
            [
                "generate",
                "--generators",
                str(_gens(tmp_path / "g.yaml", server.url)),
                "-w",
                str(ws_dir),
            ]
        )
    traces = ws.read_table("traces")
    assert len(traces) == 20 and traces["trace_id"].is_unique
    assert set(traces["template"]) == {"gsm8k", "math_boxed"}
    assert set(traces["prompt_style"]) == {"chat"}  # openai + auto: chat messages
    gens = ws.read_table("generators")
    assert gens.iloc[0]["generator_id"] == "served-a" and gens.iloc[0]["capability"] == 0.0
    assert "served-a: 20 traces, 0 errors" in capsys.readouterr().err


def test_bad_generators_file_is_a_user_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "g.yaml"
    bad.write_text(yaml.safe_dump({"generators": [{"id": "x", "model": "m", "backend": "openai"}]}))
    (tmp_path / "ws").mkdir()
    with pytest.raises(SystemExit) as exit_info:
        main(["generate", "-g", str(bad), "-w", str(tmp_path / "ws")])
    assert exit_info.value.code == 2
    assert "needs openai.base_urls or server" in capsys.readouterr().err
    bad.write_text(yaml.safe_dump({"generators": [{"id": "x", "model": "m", "tempreature": 1}]}))
    with pytest.raises(SystemExit):
        main(["generate", "-g", str(bad), "-w", str(tmp_path / "ws")])
    assert "generators.0.tempreature" in capsys.readouterr().err


@pytest.mark.integration
def test_sigkill_then_resume_exactly_once(tmp_path: Path, shared_datasets: Path) -> None:
    ws_dir = tmp_path / "ws"
    main(
        ["problems", "--source", "gsm8k", "--data-dir", str(shared_datasets), "--n", "80", "-w", str(ws_dir)]
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with ScriptedServer(latency_s=0.03) as server:
        gens = _gens(tmp_path / "g.yaml", server.url)
        cmd = [*EXE, "generate", "-g", str(gens), "-w", str(ws_dir), "--set", "generate.flush_every=8"]
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        traces_dir = ws_dir / "tables" / "traces"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            if traces_dir.is_dir() and len(list(traces_dir.glob("*.parquet"))) >= 3:
                break
            time.sleep(0.02)
        assert proc.poll() is None, "the run finished before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        ws = Workspace(ws_dir)
        partial = ws.read_table("traces")
        assert 0 < len(partial) < 160 and partial["trace_id"].is_unique
        seen_before = sum(server.seen.values())
        main(cmd[len(EXE) :])  # the re-run, in this process (saves a second interpreter start)
    traces = ws.read_table("traces")
    problems = ws.read_table("problems")
    expected = {trace_id("served-a", p, s, 3) for p in problems["problem_id"] for s in range(2)}
    assert len(traces) == 160 and set(traces["trace_id"]) == expected
    # the re-run asked only for what was missing (plus what was in flight when killed)
    assert sum(server.seen.values()) - seen_before <= 80 - len(partial) // 2 + 2


def test_capability_uses_each_problems_exact_grader(shared_datasets: Path) -> None:
    import pandas as pd

    from prefdelta.evaluate.grading import grade_traces
    from prefdelta.sources.registry import load_source

    he = load_source("humaneval", "test", shared_datasets).head(1).assign(grader="humaneval")
    problems = pd.concat(
        [
            pd.DataFrame(
                {
                    "problem_id": ["g0", "m0"],
                    "source": ["gsm8k", "math500"],
                    "reference_answer": ["1000", "\\frac{1}{2}"],
                    "grader": ["gsm8k", "boxed"],
                }
            ),
            he,
        ],
        ignore_index=True,
    )
    hid = he["problem_id"].iloc[0]
    traces = pd.DataFrame(
        {
            "problem_id": ["g0", "g0", "m0", hid, hid],
            "text": [
                "so 1,000 in all\n#### 1,000",
                "#### 7",
                "thus $\\boxed{\\frac12}$",
                he["reference_solution"].iloc[0],
                "    pass\n",
            ],
        }
    )
    assert [g.correct for g in grade_traces(problems, traces)] == [True, False, True, True, False]
