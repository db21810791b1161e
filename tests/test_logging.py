"""Logging: one level switch, results on stdout, progress and diagnostics on stderr.

The CLI configures logging (``--verbose/-v``, ``--quiet/-q``, ``$PREFDELTA_LOG_LEVEL``);
the library configures nothing, so a program importing prefdelta sees no stage lines
unless it sets logging up itself.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bad_inputs import GOOD_IMPORT, IMPORT_CMD, write_files
from prefdelta import logs, progress
from prefdelta.cli import main

TINY = Path(__file__).parent / "data" / "tiny_study.yaml"


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The real console entry point in a fresh process (its own logging set-up)."""
    return subprocess.run(
        [sys.executable, "-m", "prefdelta.cli.entry", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})},
        timeout=300,
    )


def test_quiet_hides_stage_lines_but_not_warnings_or_errors(tmp_path: Path, capsys) -> None:
    ws = tmp_path / "ws"
    main(["problems", "-c", str(TINY), "-w", str(ws), "-q"])
    assert capsys.readouterr().err == ""  # no "problems: done in …"
    main(["-q", "problems", "-c", str(TINY), "-w", str(ws), "--force"])
    assert capsys.readouterr().err == ""

    files = {name: [dict(r) for r in rows] for name, rows in GOOD_IMPORT.items()}
    for row in files["traces.jsonl"]:
        row["annotator_note"] = "checked by hand"
    write_files(files, tmp_path / "in")  # type: ignore[arg-type]
    main(["-q", *IMPORT_CMD.format(dir=tmp_path / "in", ws=tmp_path / "imp").split()])
    err = capsys.readouterr().err
    assert "warning: traces: columns not kept (no stage reads them): annotator_note" in err

    with pytest.raises(SystemExit) as exc:
        main(["--quiet", "problems", "-c", str(tmp_path / "missing.yaml"), "-w", str(ws)])
    assert exc.value.code == 2
    assert capsys.readouterr().err.startswith("error: ")


def test_quiet_hides_progress_bars_and_their_end_lines(capsys) -> None:
    with logs.configured(logs.resolve_level(verbose=False, quiet=True)):
        with progress.bar("judge: calc", 3) as advance:
            advance(3)
        assert not progress.bars_shown()
    assert capsys.readouterr().err == ""
    assert progress.bars_shown()  # the CLI's set-up is undone when it returns
    with (
        logs.configured(logs.resolve_level(verbose=False, quiet=False)),
        progress.bar("judge: calc", 3) as advance,
    ):
        advance(3)
    assert "judge: calc: 3/3 done" in capsys.readouterr().err  # off a terminal, one plain line


def test_verbose_says_which_cache_key_a_stage_compared(tmp_path: Path, capsys) -> None:
    ws = tmp_path / "ws"
    main(["problems", "-c", str(TINY), "-w", str(ws)])
    err = capsys.readouterr().err
    assert "problems: done in" in err and "cache key" not in err  # debug lines need -v
    key = (ws / "stages" / "problems.json").read_text().split('"key": "')[1].split('"')[0]
    main(["-v", "problems", "-c", str(TINY), "-w", str(ws)])
    err = capsys.readouterr().err
    assert f"debug: problems: cache key {key}; last finished with {key}" in err
    assert "problems: up to date, skipped" in err


def test_log_level_from_the_environment_and_a_bad_one_named(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("PREFDELTA_LOG_LEVEL", "warning")
    main(["problems", "-c", str(TINY), "-w", str(tmp_path / "ws")])
    assert capsys.readouterr().err == ""
    monkeypatch.setenv("PREFDELTA_LOG_LEVEL", "loud")
    with pytest.raises(SystemExit) as exc:
        main(["templates"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err == "error: PREFDELTA_LOG_LEVEL: expected one of debug, info, warning, error; got 'loud'"
    with pytest.raises(SystemExit):
        main(["-v", "-q", "templates"])
    assert "not both" in capsys.readouterr().err


def test_templates_list_on_stdout_nothing_on_stderr() -> None:
    proc = cli("templates", "-v")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    names = [line.split()[0] for line in proc.stdout.splitlines()]
    assert "demo" in names and "reference-study" in names


def test_dry_run_plan_on_stdout_quiet_leaves_stderr_empty(tmp_path: Path) -> None:
    proc = cli("run", str(TINY), "--dry-run", "-w", str(tmp_path / "ws"), "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("plan of study 'tiny'")
    assert [line.split()[0] for line in lines[1:3]] == ["problems", "zoo"]


def test_a_stage_command_keeps_stdout_for_results_and_logs_on_stderr(tmp_path: Path) -> None:
    proc = cli("-v", "problems", "-c", str(TINY), "-w", str(tmp_path / "ws"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""  # a pipe reading the stage's stdout gets no progress chatter
    lines = proc.stderr.splitlines()
    assert lines[0].startswith("debug: problems: cache key ")
    assert lines[0].endswith("last finished with nothing (no finished run)")
    assert lines[1].startswith("problems: done in ")


LIBRARY = """
import logging, sys
from pathlib import Path
from prefdelta.study.runner import run_study
from prefdelta.study.spec import load_spec
from prefdelta.study.stages import BY_NAME
from prefdelta.workspace import Workspace

if sys.argv[2] == "configured":
    logging.basicConfig(level=logging.INFO)
cfg = load_spec(Path(sys.argv[3]), ())
run_study(Workspace(Path(sys.argv[1])), cfg, stages=(BY_NAME["problems"],))
print("ran", Workspace(Path(sys.argv[1])).has_table("problems"))
"""


def test_the_library_prints_nothing_unless_the_program_configures_logging(tmp_path: Path) -> None:
    def library(ws: Path, mode: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", LIBRARY, str(ws), mode, str(TINY)],
            capture_output=True,
            text=True,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
            timeout=300,
        )

    quiet = library(tmp_path / "a", "bare")
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stdout == "ran True\n" and quiet.stderr == ""
    configured = library(tmp_path / "b", "configured")
    assert configured.returncode == 0, configured.stderr
    assert "INFO:prefdelta.study.stage:problems: done in " in configured.stderr


def test_log_lines_during_a_bar_go_through_the_bar_console(monkeypatch) -> None:
    """A record logged while a bar is live is printed by the bar's console (above the
    bar), not written past it to the raw stream, which would cut the bar's line."""
    import io

    from rich.console import Console

    screen = io.StringIO()
    monkeypatch.setattr(progress, "console", Console(file=screen, force_terminal=True, width=100))
    with logs.configured(logging.INFO), progress.bar("generate: g", 2) as advance:
        logging.getLogger("prefdelta.generate.stage").info("generate: g: 2 traces, 0 errors")
        advance(2)
    assert "generate: g: 2 traces, 0 errors" in screen.getvalue()
    assert logging.getLogger("prefdelta").level == logging.NOTSET  # restored afterwards
