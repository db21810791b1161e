"""The chaos suite: a shrunk study killed at random points, run twice from scratch, fed faults.

``make chaos`` runs these alone (``pytest -m chaos``); ``make test`` runs them with the
rest. Each test compares whole workspaces — every table, every weight file — against an
uninterrupted run, so a resume that loses, duplicates or silently changes anything fails.

Only columns that measure time are left out of the comparison (``created_at``,
``train_seconds``, timing keys inside ``runs.metrics``): everything else, floats
included, must be equal.

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
from pathlib import Path

import pandas as pd
import pytest

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
