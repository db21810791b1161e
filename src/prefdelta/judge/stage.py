"""Stage: judge — score every trace along the five dimensions, with every judge of the spec.

Judges (``judge.judges``, a registry below: adding one is a function and a line):

- ``oracle`` — the exact arith-world oracle (arith problems only);
- ``calc`` — the calculator-annotation checker for GSM8K-style traces;
- ``llm`` — a model asked with the rubric (served or in-process); its replies go to a
  SQLite cache in the workspace as they arrive, so an interrupted stage re-run resends
  nothing it already got. Replies it cannot parse become error rows with a reason.

All write the same ``judgments`` table, one shard per judge: ``trace_id, judge_id,
rubric_hash, repeat, <dimensions>, outcome, raw, error`` (plus ``parse_method`` /
``attempts`` for the LLM judge and the checker's counts for ``calc``). ``outcome`` is
never an opinion: it is the exact grade of the trace by its problem's source.

Rows a transport fault left empty make the stage *incomplete* (``Stage.incomplete``): a
plain re-run re-sends exactly those requests. A judge whose share of error rows exceeds
``judge.max_error_rate`` fails the stage (exit 2) after every judge's rows are written,
so the re-run after a fix resumes from them (:mod:`prefdelta.judge.health`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from prefdelta.errors import UserError
from prefdelta.generate.base import Backend
from prefdelta.hashing import stable_hash
from prefdelta.judge.config import JudgeSpec, LLMJudgeSettings
from prefdelta.judge.dimensions import DIMENSIONS, share_to_score
from prefdelta.judge.health import error_rate_problem, transport_gaps
from prefdelta.progress import bar
from prefdelta.study.stage import Estimate, Stage, StageContext, StageOutput
from prefdelta.workspace import Workspace

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from prefdelta.study.servers import ServerPool
    from prefdelta.study.spec import StudyConfig

JUDGMENTS = "judgments"


def problem_lookup(problems: pd.DataFrame, traces: pd.DataFrame) -> pd.DataFrame:
    """Problems indexed by id, with ``judge_text`` (the bare problem) — every trace's problem must exist."""
    df = problems.drop_duplicates("problem_id").set_index("problem_id")
    text = df["prompt"].astype("string").str.rstrip("\n")
    if "problem_text" in df.columns:
        text = df["problem_text"].astype("string").fillna(text)
    df = df.assign(judge_text=text)
    missing = sorted(set(traces["problem_id"]) - set(df.index))
    if missing:
        tid = traces.loc[traces["problem_id"] == missing[0], "trace_id"].iloc[0]
        raise UserError(f"trace {tid} refers to problem {missing[0]!r}, which is not in the problems table")
    return df


def _frame(rows: list[dict[str, object]]) -> pd.DataFrame:
    df = pd.DataFrame(rows)
    df["error"] = df["error"].astype("string")
    return df


def judge_oracle(
    problems: pd.DataFrame, traces: pd.DataFrame, spec: JudgeSpec, ctx: JudgeContext
) -> pd.DataFrame:
    """The arith oracle on every trace (the problems' hidden graphs are in ``meta``)."""
    import json

    from prefdelta.judge import oracle
    from prefdelta.worlds.arith import ArithProblem

    df = problem_lookup(problems, traces)
    rows = []
    graphs: dict[str, ArithProblem] = {}
    with bar(f"judge: {spec.judge_id}", len(traces)) as advance:
        for tid, pid, text in zip(traces["trace_id"], traces["problem_id"], traces["text"], strict=True):
            if pid not in graphs:
                p = df.loc[pid]
                if p["source"] != "arith":
                    raise UserError(
                        f"judge: the oracle judge scores arith problems only; problem {pid!r} comes from "
                        f"{p['source']!r} (use kind calc or llm)"
                    )
                graphs[pid] = ArithProblem.from_meta(pid, str(p["judge_text"]), json.loads(p["meta"]))
            scores = oracle.oracle_judge(graphs[pid], text)
            rows.append(
                {
                    "trace_id": tid,
                    "judge_id": spec.judge_id,
                    "rubric_hash": "oracle",
                    "repeat": 0,
                    **scores,
                    "raw": "",
                    "error": None,
                }
            )
            advance(1)
    return _frame(rows)


def judge_calc(
    problems: pd.DataFrame, traces: pd.DataFrame, spec: JudgeSpec, ctx: JudgeContext
) -> pd.DataFrame:
    """The calculator-annotation checker on every trace (needs annotated reference solutions)."""
    from prefdelta.judge import calc

    df = problem_lookup(problems, traces)
    if "reference_solution" not in df.columns:
        raise UserError("judge kind 'calc' needs a 'reference_solution' column in the problems table")
    rows = []
    with bar(f"judge: {spec.judge_id}", len(traces)) as advance:
        for tid, pid, text in zip(traces["trace_id"], traces["problem_id"], traces["text"], strict=True):
            p = df.loc[pid]
            report = calc.check_trace(str(p["judge_text"]), str(p["reference_solution"]), text)
            rows.append(
                {
                    "trace_id": tid,
                    "judge_id": spec.judge_id,
                    "rubric_hash": "calc",
                    "repeat": 0,
                    **{k: share_to_score(v) for k, v in report.shares().items()},
                    "outcome": report.outcome,
                    "raw": "",
                    "error": None,
                    "n_annotations": report.n_annotations,
                    "annotations_ok": report.annotations_ok,
                    "n_text_equations": report.n_text_equations,
                    "text_equations_ok": report.text_equations_ok,
                }
            )
            advance(1)
    return _frame(rows)


def make_backend(
    settings: LLMJudgeSettings, servers: ServerPool | None = None, field: str = "judge.llm"
) -> Backend:
    """The generation backend the judge model is served by (a managed server is started here)."""
    if settings.backend == "openai":
        from prefdelta.generate.openai import OpenAIBackend
        from prefdelta.study.servers import check_reachable

        if settings.server is not None:
            if servers is None:
                raise UserError(f"{field}.server: a named server needs a study run (prefdelta run / judge)")
            base_url = servers.url(settings.server, f"{field}.server")
            model = settings.model or servers.model(settings.server)
        else:
            assert settings.base_url is not None  # checked by the settings validator
            base_url, model = settings.base_url, str(settings.model)
        check_reachable(base_url, f"{field}.base_url")
        return OpenAIBackend(
            base_url,
            model,
            api_key_env=settings.api_key_env,
            max_in_flight=settings.max_in_flight,
            timeout_s=settings.timeout_s,
            max_retries=settings.transport_retries,
        )
    from prefdelta.generate.hf import HFBackend

    if not Path(str(settings.model)).is_dir():
        raise UserError(
            f"{field}.model: backend 'hf' needs a local model folder; {settings.model!r} is not one"
        )
    return HFBackend(str(settings.model))


def judge_llm(
    problems: pd.DataFrame, traces: pd.DataFrame, spec: JudgeSpec, ctx: JudgeContext
) -> pd.DataFrame:
    """The LLM judge on every trace; one row per repeat."""
    from prefdelta.judge import llm, rubric
    from prefdelta.judge.cache import ResponseCache

    settings = spec.llm
    assert settings is not None
    df = problem_lookup(problems, traces)
    rub = rubric.load_rubric(settings.rubric)
    items = [
        llm.JudgeItem(tid, str(df.at[pid, "judge_text"]), text, str(df.at[pid, "reference_answer"]))
        for tid, pid, text in zip(traces["trace_id"], traces["problem_id"], traces["text"], strict=True)
    ]
    options = llm.LLMJudgeOptions(
        repeats=settings.repeats,
        temperature=settings.temperature,
        max_tokens=settings.max_tokens,
        retries=settings.retries,
        structured=settings.structured,
        chat=settings.chat,
        seed=settings.seed,
    )
    cache = ResponseCache(ctx.cache_path)
    try:
        backend = ctx.backend or make_backend(settings, ctx.servers, ctx.field)
        judge = llm.LLMJudge(backend, rub, spec.judge_id, cache, options)
        judged = judge.score(items)
        log.info(
            f"judge: {spec.judge_id}: {judge.requests_sent} requests sent, {cache.hits} cached replies reused"
        )
    finally:
        cache.close()
    cols = ["trace_id", "judge_id", "rubric_hash", "repeat", *rub.names, "raw", "error"]
    return judged[[*cols, "parse_method", "attempts"]]


class JudgeContext:
    """What a judge function may need beyond problems and traces."""

    def __init__(
        self, cache_path: Path, servers: ServerPool | None, field: str, backend: Backend | None = None
    ) -> None:
        self.cache_path = cache_path
        self.servers = servers
        self.field = field
        self.backend = backend


JudgeFn = Callable[[pd.DataFrame, pd.DataFrame, JudgeSpec, JudgeContext], pd.DataFrame]
JUDGES: dict[str, JudgeFn] = {"oracle": judge_oracle, "calc": judge_calc, "llm": judge_llm}


def with_outcome(judged: pd.DataFrame, problems: pd.DataFrame, traces: pd.DataFrame) -> pd.DataFrame:
    """``judged`` with ``outcome`` set to each trace's exact grade (its problem source's grader)."""
    from prefdelta.evaluate.grading import grade_traces

    grades = grade_traces(problems, traces)
    correct = dict(zip(traces["trace_id"], (g.correct for g in grades), strict=True))
    judged = judged.copy()
    judged["outcome"] = judged["trace_id"].map(correct).astype(bool)
    return judged


def run_judge(
    problems: pd.DataFrame, traces: pd.DataFrame, spec: JudgeSpec, ctx: JudgeContext
) -> pd.DataFrame:
    """One judge's judgments of ``traces``, with the exact outcome and the dimensions in order."""
    judged = with_outcome(JUDGES[spec.kind](problems, traces, spec, ctx), problems, traces)
    lead = ["trace_id", "judge_id", "rubric_hash", "repeat", *DIMENSIONS, "outcome", "raw", "error"]
    return judged[[c for c in lead if c in judged] + [c for c in judged if c not in lead]]


def shard_name(judge_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=+-]", "_", judge_id) + "-" + stable_hash(judge_id, length=6)


def body(ws: Workspace, cfg: StudyConfig, ctx: StageContext) -> StageOutput:
    problems = ws.read_table("problems", required_by="judge")
    traces = ws.read_table("traces", required_by="judge")
    shards, errors, failing = [], [], []
    for i, spec in enumerate(cfg.judge.judges):
        jctx = JudgeContext(ws.root / cfg.judge.cache, ctx.servers, f"judge.judges.{i}.llm")
        df = run_judge(problems, traces, spec, jctx)
        name = shard_name(spec.judge_id)
        ws.write_shard(JUDGMENTS, name, df)
        shards.append(name)
        n_err = int(df["error"].notna().sum())
        errors.append(f"{spec.judge_id}: {len(df)} judgments, {n_err} errors")
        if spec.max_error_rate is None:
            limit, field = cfg.judge.max_error_rate, "judge.max_error_rate"
        else:
            limit, field = spec.max_error_rate, f"judge.judges.{i}.max_error_rate"
        problem = error_rate_problem(df, spec.judge_id, limit, field)
        if problem is not None:
            failing.append(problem)
    ws.prune_shards(JUDGMENTS, shards)
    if failing:  # after every judge's rows are written: the re-run resumes from them
        raise UserError(" | ".join(failing))
    return StageOutput([JUDGMENTS], [], "(" + "; ".join(errors) + ")")


def incomplete(ws: Workspace, cfg: StudyConfig) -> str | None:
    """Judgments a transport fault left missing (the stage is then re-run for them), or ``None``."""
    frames = [
        pd.read_parquet(ws.shard_path(JUDGMENTS, s), columns=["judge_id", "error"])
        for s in ws.shards(JUDGMENTS)
    ]
    return transport_gaps(pd.concat(frames, ignore_index=True)) if frames else None


def estimate(ws: Workspace, cfg: StudyConfig) -> Estimate:
    n_traces = len(ws.read_table("traces")) if ws.has_table("traces") else None
    if n_traces is None:
        from prefdelta.generate.stage import estimate as gen_estimate

        n_traces = gen_estimate(ws, cfg).counts.get("generation requests", 0)
    counts = {"traces": n_traces}
    llm_requests = sum(n_traces * j.llm.repeats for j in cfg.judge.judges if j.llm is not None)
    if llm_requests:
        counts["judge requests"] = llm_requests
        counts["judge tokens at most"] = sum(
            n_traces * j.llm.repeats * j.llm.max_tokens for j in cfg.judge.judges if j.llm is not None
        )
    return Estimate(counts, ", ".join(j.judge_id for j in cfg.judge.judges))


def preflight(ws: Workspace, cfg: StudyConfig) -> None:
    """LLM judges given by URL answer; an hf judge's folder exists."""
    from prefdelta.study.servers import check_reachable

    for i, j in enumerate(cfg.judge.judges):
        if j.llm is None:
            continue
        if j.llm.backend == "openai" and j.llm.base_url:
            check_reachable(j.llm.base_url, f"judge.judges.{i}.llm.base_url")
        if j.llm.backend == "hf" and not Path(str(j.llm.model)).is_dir():
            raise UserError(
                f"judge.judges.{i}.llm.model: backend 'hf' needs a local model folder; {j.llm.model!r} is not one"
            )


def _settings(cfg: StudyConfig) -> dict[str, object]:
    out: dict[str, object] = {"judge": cfg.judge.model_dump(mode="json")}
    rubrics = {}
    for j in cfg.judge.judges:
        if j.llm is not None:
            from prefdelta.judge.rubric import load_rubric

            rubrics[j.judge_id] = load_rubric(j.llm.rubric).hash
            if j.llm.server is not None:
                out.setdefault("servers", {})[j.llm.server] = cfg.servers[j.llm.server].model_dump(
                    mode="json"
                )  # type: ignore[union-attr]
    out["rubrics"] = rubrics
    return out


STAGE = Stage(
    name="judge",
    inputs=("traces", "problems"),
    outputs=(JUDGMENTS,),
    sections=("judge",),
    body=body,
    help="Score every trace along the five reasoning-quality dimensions with every judge of the spec.",
    estimate=estimate,
    settings=_settings,
    preflight=preflight,
    incomplete=incomplete,
)
