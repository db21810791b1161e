"""The whole study through the real CLI entry point, a re-run from cache, and resume after a kill."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "tests" / "data" / "tiny_study.yaml"
PREFDELTA = [sys.executable, "-m", "prefdelta.cli.entry"]

pytestmark = pytest.mark.integration


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run([*PREFDELTA, *args], capture_output=True, text=True, env=full_env, timeout=600)


@pytest.fixture(scope="module")
def clean_workspace(tmp_path_factory) -> Path:
    ws = tmp_path_factory.mktemp("clean")
    proc = run_cli("run", "-c", str(TINY), "-w", str(ws))
    assert proc.returncode == 0, proc.stderr
    assert f"summary: {ws / 'reports' / 'summary.md'}" in proc.stdout
    return ws


def read(ws: Path, table: str) -> pd.DataFrame:
    from prefdelta.workspace import Workspace

    return Workspace(ws).read_table(table)


def test_study_writes_every_table_and_the_summary(clean_workspace):
    for table in (
        "problems",
        "zoo",
        "traces",
        "generators",
        "judgments",
        "pairs",
        "selections",
        "runs",
        "evals",
    ):
        assert len(read(clean_workspace, table)) > 0, table
    summary = (clean_workspace / "reports" / "summary.md").read_text()
    for heading in (
        "## Generators",
        "## Pairs",
        "## Selections",
        "## Student before and after preference training",
    ):
        assert heading in summary
    runs = read(clean_workspace, "runs")
    # one run per selection x (base + variant) x seed, each row naming its variant and seed
    selections = read(clean_workspace, "selections")
    n_gen = selections.loc[selections["strategy"].str.startswith("gen:"), "strategy"].nunique()
    assert n_gen >= 1
    assert len(runs) == (3 + n_gen) * 2 * 2
    assert set(zip(runs["variant"], runs["algorithm"], strict=True)) == {("dpo", "dpo"), ("kto", "kto")}
    seeds = runs.groupby(["variant", "strategy"])["seed"].apply(lambda x: tuple(sorted(x)))
    assert set(seeds) == {(0, 1)}
    assert runs["run_id"].is_unique
    assert "after kto on" in summary and "Seeds 0, 1" in summary and "seeds pooled" in summary
    assert "Generator-level delta" in summary
    evals = read(clean_workspace, "evals")
    evals = evals[evals["level"] == "suite"]
    gens = read(clean_workspace, "generators")
    runs = read(clean_workspace, "runs")
    # every generator and every run evaluated in- and out-of-domain, once
    assert set(evals["model_id"]) == set(gens["generator_id"]) | set(runs["run_id"])
    assert not evals.duplicated(["model_id", "suite"]).any()
    assert set(evals["domain"]) == {"in", "out"}


def test_rerun_with_everything_cached_skips_every_stage(clean_workspace):
    proc = run_cli("run", "-c", str(TINY), "-w", str(clean_workspace))
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("up to date, skipped") == 9, proc.stderr


def test_changed_config_reruns_only_downstream_stages(clean_workspace, tmp_path):
    cfg = tmp_path / "changed.yaml"
    cfg.write_text(TINY.read_text().replace("fraction: 0.5", "fraction: 0.25"))
    proc = run_cli("run", "-c", str(cfg), "-w", str(clean_workspace))
    assert proc.returncode == 0, proc.stderr
    skipped = [line.split(":")[0] for line in proc.stderr.splitlines() if "up to date, skipped" in line]
    assert skipped == ["problems", "zoo", "generate", "judge", "pairs"]


CRASH = textwrap.dedent(
    """
    import os, sys
    import prefdelta.workspace as w
    table, nth = sys.argv[1], int(sys.argv[2])
    calls = {"n": 0}
    real_replace = os.replace
    def replace(src, dst):
        if f"/tables/{table}/" in str(dst):
            calls["n"] += 1
            if calls["n"] == nth:
                os._exit(137)  # as abrupt as SIGKILL: no cleanup, the temp file stays behind
        return real_replace(src, dst)
    w.os.replace = replace
    from prefdelta.cli import main
    main(["run", "-c", sys.argv[3], "-w", sys.argv[4]])
    """
)


@pytest.mark.parametrize(("table", "nth"), [("traces", 2), ("evals", 3)])
def test_resume_after_kill_has_no_duplicates_and_no_lost_rows(clean_workspace, tmp_path, table, nth):
    ws = tmp_path / "ws"
    crashed = subprocess.run(
        [sys.executable, "-c", CRASH, table, str(nth), str(TINY), str(ws)],
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        timeout=600,
    )
    assert crashed.returncode == 137, crashed.stderr
    assert list((ws / "tables" / table).glob(".*.tmp-*")), "the kill should leave a temp file behind"
    proc = run_cli("run", "-c", str(TINY), "-w", str(ws))
    assert proc.returncode == 0, proc.stderr
    assert not list((ws / "tables" / table).glob(".*.tmp-*"))
    for name, key in (
        ("traces", ["trace_id"]),
        ("evals", ["model_id", "suite", "benchmark", "metric"]),
        ("judgments", ["trace_id"]),
    ):
        got, want = read(ws, name), read(clean_workspace, name)
        assert not got.duplicated(key).any(), name
        assert len(got) == len(want), name
    pd.testing.assert_frame_equal(
        read(ws, "traces").sort_values("trace_id")[["trace_id", "text"]].reset_index(drop=True),
        read(clean_workspace, "traces").sort_values("trace_id")[["trace_id", "text"]].reset_index(drop=True),
    )


def test_user_errors_exit_2_with_one_line(tmp_path):
    proc = run_cli("pairs", "-w", str(tmp_path / "empty"))
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0
    assert "needs table 'traces'" in proc.stderr
    assert "Traceback" not in proc.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text(TINY.read_text().replace("lr: 0.0001", "lr: -3"))
    proc = run_cli("train", "-c", str(bad), "-w", str(tmp_path / "w"))
    assert proc.returncode == 2 and "field 'train.lr'" in proc.stderr
    proc = run_cli("train", "-c", str(bad), "-w", str(tmp_path / "w"), "--debug")
    assert proc.returncode != 0 and "Traceback" in proc.stderr


def test_help_on_every_command():
    from typer.main import get_command
    from typer.testing import CliRunner

    from prefdelta.cli import app

    runner = CliRunner()
    root = get_command(app)
    commands = [[]] + [[name] for name in root.commands]  # type: ignore[attr-defined]
    for group in root.commands.values():  # type: ignore[attr-defined]
        commands += [[group.name, sub] for sub in getattr(group, "commands", {})]
    assert {"demo", "run", "generate", "judge", "pairs", "select", "train", "eval", "report"} <= set(
        root.commands
    )
    for command in commands:
        result = runner.invoke(app, [*command, "--help"])
        assert result.exit_code == 0, (command, result.output)
        assert "Usage" in result.output, command
