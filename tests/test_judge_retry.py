"""The judge stage against the scripted fault server: a re-run re-sends exactly the requests
that failed in transport and nothing else; a judge with too many error rows fails loudly."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from conftest import run_stage, spec_from
from prefdelta.errors import UserError
from prefdelta.generate import scripted_server
from prefdelta.generate.scripted_server import ScriptedServer
from prefdelta.judge.llm import is_transport_error
from prefdelta.study.runner import plan
from prefdelta.study.stages import BY_NAME
from prefdelta.workspace import Workspace
from scripted_judge import sampled_scores
from test_judge_stage import arith_workspace

N_TRACES, REPEATS = 6, 3
N = N_TRACES * REPEATS  # requests of one judge run


@pytest.fixture(autouse=True)
def _judge_replies(monkeypatch: pytest.MonkeyPatch) -> None:
    """The scripted server answers with judge JSON instead of its echo text."""
    monkeypatch.setattr(scripted_server, "echo_text", sampled_scores)


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return arith_workspace(tmp_path / "ws", N_TRACES)


def judge_spec(url: str, **judge: Any) -> dict[str, Any]:
    llm = {"model": "scripted", "base_url": url, "repeats": REPEATS, "transport_retries": 0}
    return {"judge": {"kind": "llm", "id": "llm:scripted", "llm": llm, **judge}}


def faults(ws: Workspace, bad: set[tuple[str, int]]) -> Callable[[dict[str, Any], int], str]:
    """A script failing (HTTP 500) the first time it sees each (trace_id, repeat) of ``bad``."""
    texts = ws.read_table("traces").set_index("trace_id")["text"]

    def script(body: dict[str, Any], attempt: int) -> str:
        user = body["messages"][-1]["content"]
        hit = any(texts[tid] in user and body.get("seed") == rep for tid, rep in bad)
        return "500" if hit and attempt == 0 else "ok"

    return script


def sent(server: ScriptedServer) -> int:
    return sum(server.actions.values())


@pytest.fixture
def clean(tmp_path: Path) -> Iterator[pd.DataFrame]:
    """The judgments of the same traces by a run that never met a fault."""
    ws = arith_workspace(tmp_path / "clean", N_TRACES)
    with ScriptedServer() as server:
        run_stage(ws, spec_from(judge_spec(server.url)), "judge")
    yield ws.read_table("judgments")


@pytest.mark.parametrize("force", [False, True])
def test_rerun_resends_only_the_requests_that_failed(
    ws: Workspace, clean: pd.DataFrame, force: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefdelta.study import runner

    monkeypatch.setattr(runner, "STAGES", (BY_NAME["judge"], BY_NAME["pairs"]))  # the plan from here on
    bad = {("t1", 0), ("t2", 2), ("t3", 1)}
    with ScriptedServer(faults(ws, bad)) as server:
        cfg = spec_from(judge_spec(server.url))
        first = run_stage(ws, cfg, "judge")
        assert not first.skipped and sent(server) == N
        before = ws.read_table("judgments")
        gaps = is_transport_error(before["error"])
        assert set(zip(before.loc[gaps, "trace_id"], before.loc[gaps, "repeat"], strict=True)) == bad
        assert (before.loc[gaps, "attempts"] == 1).all()  # not retried under a new seed
        status = {row.stage: row.status for row in plan(ws, cfg)}
        assert (
            status["judge"]
            == f"runs (incomplete: llm:scripted: 3 of {N} judgments missing after transport errors)"
        )
        assert status["pairs"].startswith("runs (its input judgments changes)")

        second = run_stage(ws, cfg, "judge", force=force)
        assert not second.skipped and sent(server) == N + len(bad)
        after = ws.read_table("judgments")
        assert after["error"].isna().all()
        pd.testing.assert_frame_equal(after[~gaps], before[~gaps])  # valid rows untouched
        pd.testing.assert_frame_equal(after, clean)  # as if no fault had happened

        assert run_stage(ws, cfg, "judge").skipped and sent(server) == N + len(bad)


def test_a_gap_that_fails_again_stays_a_gap(ws: Workspace) -> None:
    """A request that fails on every run is re-sent once per run, and the stage stays incomplete."""
    with ScriptedServer(lambda body, attempt: "500" if body.get("seed") == 1 else "ok") as server:
        cfg = spec_from(judge_spec(server.url, max_error_rate=0.5))
        run_stage(ws, cfg, "judge")
        run_stage(ws, cfg, "judge")
        assert sent(server) == N + N_TRACES
        df = ws.read_table("judgments")
        assert is_transport_error(df["error"]).sum() == N_TRACES
        assert BY_NAME["judge"].gaps(ws, cfg) == (
            f"llm:scripted: {N_TRACES} of {N} judgments missing after transport errors"
        )


def cli_exit_2(capsys: pytest.CaptureFixture[str], spec: Path, ws: Workspace) -> str:
    from prefdelta.cli import main

    with pytest.raises(SystemExit) as err:
        main(["judge", "-c", str(spec), "-w", str(ws.root)])
    assert err.value.code == 2
    err = capsys.readouterr().err
    msg = err.strip().splitlines()[-1]  # progress lines come before it
    assert msg.startswith("error: ") and "Traceback" not in err
    return msg


def test_all_rows_unparseable_exits_2_naming_judge_share_and_reasons(
    ws: Workspace, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(scripted_server, "echo_text", lambda body, index: "I would rather not grade this.")
    with ScriptedServer() as server:
        spec = tmp_path / "spec.yaml"
        spec.write_text(yaml.safe_dump(judge_spec(server.url)))
        msg = cli_exit_2(capsys, spec, ws)
        assert f"judge llm:scripted: 100% of its {N} judgments are errors ({N})" in msg
        assert "above judge.max_error_rate 0.2" in msg
        assert f"{N}× " + repr("unparseable judge output: no score for 'factuality'") in msg
        assert len(ws.read_table("judgments")) == N  # the rows were written
        assert ws.stage_record("judge") is None  # and the stage is not "done"

        own = {**judge_spec(server.url)["judge"], "max_error_rate": 1.0}  # overrides judge.max_error_rate
        run_stage(ws, spec_from({"judge": {"judges": [own]}}), "judge")
        assert sent(server) == 3 * N  # every reply was cached: the first run's attempts only


def test_too_many_transport_errors_fail_then_the_rerun_resumes(
    ws: Workspace, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = {(f"t{i}", r) for i in range(N_TRACES) for r in range(2)}  # 2 of 3 repeats fail once
    with ScriptedServer(faults(ws, bad)) as server:
        spec = tmp_path / "spec.yaml"
        spec.write_text(yaml.safe_dump(judge_spec(server.url)))
        msg = cli_exit_2(capsys, spec, ws)
        assert f"judge llm:scripted: 67% of its {N} judgments are errors ({len(bad)})" in msg
        assert f"{len(bad)}× 'backend error: HTTP 500" in msg
        written = ws.read_table("judgments")
        assert written["error"].notna().sum() == len(bad) and written["error"].isna().sum() == N - len(bad)

        from prefdelta.cli import main

        main(["judge", "-c", str(spec), "-w", str(ws.root)])  # exits 0: the gaps are filled
        assert sent(server) == N + len(bad)
    df = ws.read_table("judgments")
    assert df["error"].isna().all()
    pd.testing.assert_frame_equal(df[written["error"].isna()], written[written["error"].isna()])


def test_error_share_at_the_limit_passes_and_the_limit_is_validated(ws: Workspace) -> None:
    with ScriptedServer(lambda body, attempt: "500" if body.get("seed") == 0 else "ok") as server:
        out = run_stage(ws, spec_from(judge_spec(server.url, max_error_rate=1 / 3)), "judge")
    assert f"{N_TRACES} errors" in out.detail
    with pytest.raises(UserError, match=r"judge\.max_error_rate"):
        spec_from(judge_spec("http://x/v1", max_error_rate=1.5))


def test_a_refused_request_is_an_error_row_no_rerun_resends(ws: Workspace) -> None:
    """HTTP 400 (a prompt over the model's context) would be refused again: the row counts as
    an error, the stage is complete, and a plain re-run sends nothing; --force asks again."""
    with ScriptedServer(lambda body, attempt: "400" if body.get("seed") == 1 else "ok") as server:
        cfg = spec_from(judge_spec(server.url, max_error_rate=0.5))
        first = run_stage(ws, cfg, "judge")
        assert sent(server) == N and f"{N_TRACES} errors" in first.detail
        df = ws.read_table("judgments")
        refused = df["error"].astype("string").fillna("").str.startswith("request refused: HTTP 400")
        assert set(df.loc[refused, "repeat"]) == {1} and refused.sum() == N_TRACES
        assert not is_transport_error(df["error"]).any() and df.loc[refused, "factuality"].isna().all()
        assert BY_NAME["judge"].gaps(ws, cfg) is None
        assert run_stage(ws, cfg, "judge").skipped and sent(server) == N
        run_stage(ws, cfg, "judge", force=True)
        assert sent(server) == N + N_TRACES  # the replies of the rest come from the cache
        pd.testing.assert_frame_equal(ws.read_table("judgments"), df)
