"""Stage: problems — the problems every generator answers and pairs are built on.

Writes the ``problems`` table (problem_id, source, split, prompt, reference_answer,
reference_solution, meta, grader): one row per problem of every ``problems:`` entry,
each row naming the exact grader of its answers.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

import pandas as pd

from prefdelta.errors import UserError
from prefdelta.problems.config import ProblemSource
from prefdelta.sources.base import resolve_data_dir
from prefdelta.study.stage import Estimate, Stage, StageContext, StageOutput
from prefdelta.workspace import Workspace

if TYPE_CHECKING:
    from prefdelta.study.spec import StudyConfig


def load_entry(entry: ProblemSource, data_dir: str | None) -> pd.DataFrame:
    """The rows of one ``problems:`` entry, ``n`` of them drawn as configured, with their grader."""
    if entry.source is not None:
        from prefdelta.sources.registry import load_source, source_info

        info = source_info(entry.source)
        split = entry.split or ("pairs" if info.world else "test")
        if info.world:
            df = load_source(entry.source, split, None, n=entry.n, seed=entry.seed, spec=entry.spec or {})
        else:
            df = load_source(entry.source, split, data_dir)
    else:
        from prefdelta.sources.custom import load_custom

        location = entry.path if entry.path is not None else f"hub:{entry.hub}"
        df = load_custom(
            location,
            entry.columns,
            source=entry.name,
            split=entry.split or "test",
            answer_format=entry.answer_format,
        )
    if entry.n is not None and len(df) > entry.n:
        if entry.sample == "first":
            df = df.head(entry.n)
        else:  # a seeded draw, kept in file order
            df = df.sample(n=entry.n, random_state=entry.seed).sort_index()
    return df.assign(grader=entry.resolved_grader()).reset_index(drop=True)


def body(ws: Workspace, cfg: StudyConfig, ctx: StageContext) -> StageOutput:
    if not cfg.problems:
        raise UserError("problems: the spec names no problems (e.g. - {source: gsm8k, split: train, n: 100})")
    data_dir = cfg.data_dir
    frames = [load_entry(entry, data_dir) for entry in cfg.problems]
    df = pd.concat(frames, ignore_index=True)
    dup = df["problem_id"].duplicated()
    if dup.any():
        raise UserError(
            f"problems: problem id {df['problem_id'][dup].iloc[0]!r} comes from two entries "
            "(give them different splits or names)"
        )
    ws.write_table("problems", df)
    by_source = df.groupby("source", sort=False).size()
    return StageOutput(["problems"], [], "(" + ", ".join(f"{s}: {n}" for s, n in by_source.items()) + ")")


def estimate(ws: Workspace, cfg: StudyConfig) -> Estimate:
    return Estimate({"problems": count_problems(cfg)})


def count_problems(cfg: StudyConfig) -> int:
    """How many pair problems the spec asks for (loading a source only when ``n`` is unset)."""
    total = 0
    for entry in cfg.problems:
        if entry.n is not None:
            total += entry.n
        else:
            with contextlib.suppress(UserError):
                total += len(load_entry(entry, cfg.data_dir))
    return total


def _settings(cfg: StudyConfig) -> dict[str, object]:
    root = (
        resolve_data_dir(cfg.data_dir)
        if any(p.source and p.source != "arith" for p in cfg.problems)
        else None
    )
    return {"problems": [p.model_dump(mode="json") for p in cfg.problems], "data_dir": str(root or "")}


STAGE = Stage(
    name="problems",
    inputs=(),
    outputs=("problems",),
    sections=("problems",),
    body=body,
    help="Write the problems table: the pair problems of every problems: entry (arith world, "
    "benchmarks, your files).",
    estimate=estimate,
    settings=_settings,
)
