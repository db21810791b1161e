"""Stage: judge — score every trace along the five dimensions plus outcome.

Three judges (``judge.kind``): the exact arith oracle, the calculator-annotation checker
for GSM8K-style traces, and an LLM judge over a generation backend. All write the same
``judgments`` table: ``trace_id, judge_id, rubric_hash, repeat, <dimensions>, outcome,
raw, error`` (plus ``parse_method``/``attempts`` for the LLM judge and the checker's
counts for ``calc``). The LLM judge's replies go to a SQLite cache in the workspace as
they arrive, so an interrupted stage re-run resends nothing it already got.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from prefdelta.config import StudyConfig
from prefdelta.errors import UserError
from prefdelta.generate.base import Backend
from prefdelta.judge import calc, llm, oracle, outcome, parse, rubric
from prefdelta.judge.cache import ResponseCache
from prefdelta.judge.dimensions import share_to_score
from prefdelta.progress import bar, info
from prefdelta.settings.judge import LLMJudgeSettings
from prefdelta.study.stages.base import StageResult, problems_of, run_stage
from prefdelta.workspace import Workspace, code_version


def _problem_lookup(problems: pd.DataFrame, traces: pd.DataFrame) -> pd.DataFrame:
    """Problems indexed by id, with ``judge_text`` (the bare problem) — every trace's problem must exist."""
    df = problems.set_index("problem_id")
    text = df["prompt"].astype("string")
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


def judge_oracle(problems: pd.DataFrame, traces: pd.DataFrame) -> pd.DataFrame:
    """The arith oracle on every trace (problems of the ``pairs`` split)."""
    by_id = {p.problem_id: p for p in problems_of(problems, "pairs")}
    rows = []
    with bar("judge: oracle", len(traces)) as advance:
        for tid, pid, text in zip(traces["trace_id"], traces["problem_id"], traces["text"], strict=True):
            if pid not in by_id:
                raise UserError(f"trace {tid} refers to problem {pid!r}, which is not in the problems table")
            scores = oracle.oracle_judge(by_id[pid], text)
            rows.append(
                {
                    "trace_id": tid,
                    "judge_id": "arith-oracle",
                    "rubric_hash": "oracle",
                    "repeat": 0,
                    **scores,
                    "raw": "",
                    "error": None,
                }
            )
            advance(1)
    return _frame(rows)


def judge_calc(problems: pd.DataFrame, traces: pd.DataFrame) -> pd.DataFrame:
    """The calculator-annotation checker on every trace (needs annotated reference solutions)."""
    df = _problem_lookup(problems, traces)
    if "reference_solution" not in df.columns:
        raise UserError("judge kind 'calc' needs a 'reference_solution' column in the problems table")
    rows = []
    with bar("judge: calc", len(traces)) as advance:
        for tid, pid, text in zip(traces["trace_id"], traces["problem_id"], traces["text"], strict=True):
            p = df.loc[pid]
            report = calc.check_trace(str(p["judge_text"]), str(p["reference_solution"]), text)
            rows.append(
                {
                    "trace_id": tid,
                    "judge_id": "calc-checker",
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


def make_backend(settings: LLMJudgeSettings) -> Backend:
    """The generation backend the judge model is served by."""
    if settings.backend == "openai":
        from prefdelta.generate.openai import OpenAIBackend

        assert settings.base_url is not None  # checked by the settings validator
        return OpenAIBackend(
            settings.base_url,
            settings.model,
            api_key_env=settings.api_key_env,
            max_in_flight=settings.max_in_flight,
            timeout_s=settings.timeout_s,
        )
    from prefdelta.generate.hf import HFBackend

    if not Path(settings.model).is_dir():
        raise UserError(
            f"judge.llm.model: backend 'hf' needs a local model folder; {settings.model!r} is not one"
        )
    return HFBackend(settings.model)


def judge_llm(
    problems: pd.DataFrame,
    traces: pd.DataFrame,
    settings: LLMJudgeSettings,
    answer_format: str,
    cache_path: Path,
    backend: Backend | None = None,
) -> pd.DataFrame:
    """The LLM judge on every trace, plus exact outcome grading; one row per repeat."""
    df = _problem_lookup(problems, traces)
    rub = rubric.load_rubric(settings.rubric)
    judge_id = settings.judge_id or f"llm:{settings.model}"
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
    cache = ResponseCache(cache_path)
    try:
        judge = llm.LLMJudge(backend or make_backend(settings), rub, judge_id, cache, options)
        judged = judge.score(items)
        info(f"judge: {judge.requests_sent} requests sent, {cache.hits} cached replies reused")
    finally:
        cache.close()
    refs = [str(df.at[pid, "reference_answer"]) for pid in traces["problem_id"]]
    verdicts = outcome.grade_many(answer_format, list(traces["text"]), refs)
    correct = dict(zip(traces["trace_id"], (v.correct for v in verdicts), strict=True))
    judged["outcome"] = judged["trace_id"].map(correct).astype(bool)
    cols = ["trace_id", "judge_id", "rubric_hash", "repeat", *rub.names, "outcome", "raw", "error"]
    return judged[[*cols, "parse_method", "attempts"]]


def stage_judge(ws: Workspace, cfg: StudyConfig, force: bool = False) -> StageResult:
    """Score every trace with the configured judge; write ``judgments``."""
    jc = cfg.judge
    config: dict[str, object] = jc.model_dump()
    if jc.kind == "llm":
        assert jc.llm is not None
        config["rubric_hash"] = rubric.load_rubric(jc.llm.rubric).hash

    def body() -> tuple[list[str], list[Path], str]:
        problems = ws.read_table("problems", required_by="judge")
        traces = ws.read_table("traces", required_by="judge")
        if jc.kind == "oracle":
            df = judge_oracle(problems, traces)
        elif jc.kind == "calc":
            df = judge_calc(problems, traces)
        else:
            assert jc.llm is not None
            df = judge_llm(problems, traces, jc.llm, jc.answer_format, ws.root / jc.cache)
        ws.write_table("judgments", df)
        n_err = int(df["error"].notna().sum())
        return ["judgments"], [], f"({len(df)} judgments, {n_err} errors)"

    version = code_version(oracle, calc, llm, parse, rubric, outcome)
    return run_stage(ws, "judge", ["traces", "problems"], config, version, body, force)
