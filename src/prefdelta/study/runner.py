"""Run a study: every stage of the table in order, or one stage; and the plan of ``--dry-run``.

Every stage command and ``prefdelta run`` come here, so a study run from one spec and a
chain of stage commands execute the same stage functions. A run records the spec it ran
with in ``<workspace>/spec.yaml``; stage commands given no spec use that one.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from prefdelta.study.servers import ServerPool
from prefdelta.study.spec import SPEC_FILE, StudyConfig, dump_spec
from prefdelta.study.stage import Stage, StageResult, run_stage, uses_workers
from prefdelta.study.stages import STAGES
from prefdelta.workspace import Workspace, atomic_write_text

log = logging.getLogger(__name__)


def _prepare(ws: Workspace, cfg: StudyConfig, record: bool) -> ServerPool:
    import torch

    torch.set_num_threads(cfg.threads)
    if record:
        atomic_write_text(ws.root / SPEC_FILE, dump_spec(cfg))
    return ServerPool(cfg.servers, ws.root / "logs" / "servers")


def run_study(
    ws: Workspace,
    cfg: StudyConfig,
    force: bool = False,
    stages: tuple[Stage, ...] = STAGES,
    record: bool = True,
) -> list[StageResult]:
    """Run ``stages`` in order (each skipped when up to date); servers are stopped at the end.

    ``record``: write the spec to ``<workspace>/spec.yaml`` (the spec later stage commands
    default to). A study run records it; a stage command only when given ``-c`` or when
    the workspace has none, so a one-off option (``prefdelta eval --model X``) does not
    become the workspace's spec."""
    start = time.perf_counter()
    for stage in stages:
        if stage.preflight is not None:
            stage.preflight(ws, cfg)
    warm = uses_workers(stages, cfg)
    with _prepare(ws, cfg, record) as servers:
        results = [run_stage(ws, s, cfg, servers, force=force, warm_workers=warm) for s in stages]
    if len(stages) > 1:
        log.info(f"study '{cfg.name}' finished in {time.perf_counter() - start:.0f}s")
    return results


@dataclass(frozen=True)
class PlanRow:
    stage: str
    status: str  # "cached", "runs", "runs (inputs change)" …
    work: str


def plan(ws: Workspace, cfg: StudyConfig) -> list[PlanRow]:
    """What ``run`` would do, without doing it: each stage cached or not, and the work
    (requests, tokens, runs, evaluations) of those that are not."""
    rows: list[PlanRow] = []
    changing: set[str] = set()
    for stage in STAGES:
        reads = set(stage.inputs) | {t for t in stage.optional_inputs}
        upstream = sorted(reads & changing)
        missing = [t for t in stage.inputs if not ws.has_table(t)]
        if upstream:
            status = f"runs (its input {upstream[0]} changes)"
        elif missing:
            status = f"runs (no {missing[0]} table yet)"
        else:
            try:
                key = stage.key(ws, cfg)
            except Exception as err:
                status = f"runs ({err})"
            else:
                status = "cached" if ws.is_fresh(stage.name, key) else "runs"
                gaps = stage.gaps(ws, cfg) if status == "cached" else None
                if gaps is not None:
                    status = f"runs (incomplete: {gaps})"
        if status != "cached":
            changing.update(stage.outputs)
        work = ""
        if status != "cached" and stage.estimate is not None:
            try:
                work = stage.estimate(ws, cfg).text()
            except Exception as err:
                work = f"(estimate unavailable: {err})"
        rows.append(PlanRow(stage.name, status, work))
    return rows
