"""One stage of the pipeline, and how it is run, skipped and planned.

A :class:`Stage` is a row of the stage table (:mod:`prefdelta.study.stages`): its name,
the tables it reads and writes, the config sections it depends on, the function that
does the work, a function that estimates the work for ``--dry-run``, and the help text
of its CLI command. ``prefdelta run`` and every stage command call the same
:func:`run_stage`.

Skip rule: a stage's cache key hashes its input tables' content, the config sections it
reads, and the source of every project module its code can reach
(:func:`prefdelta.study.codehash.code_version`). When the key equals the one recorded
at its last completion, its outputs still exist, and the stage does not report its own
outputs incomplete (``Stage.incomplete``: rows a transient fault left missing), the
stage is skipped. An incomplete stage re-runs with the same key; its body fills the gaps
(its own caches make the finished part cost nothing).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prefdelta.study.codehash import code_version
from prefdelta.workspace import Workspace

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from prefdelta.study.servers import ServerPool
    from prefdelta.study.spec import StudyConfig


@dataclass(frozen=True)
class StageOutput:
    """What a stage body returns: the tables and paths it wrote, and a one-line summary."""

    tables: list[str]
    paths: list[Path] = field(default_factory=list)
    detail: str = ""


@dataclass
class StageContext:
    """What a stage body gets besides the workspace and the spec.

    ``code``: the stage's code version, for keys of work cached *inside* a stage (a zoo
    model, a training run, an eval shard), so that a code change re-does that work too.
    ``servers``: the local servers of the spec, started on first use.
    """

    code: str
    servers: ServerPool


@dataclass(frozen=True)
class Estimate:
    """Work a stage would do, for ``--dry-run``: counts by kind and a note."""

    counts: dict[str, int] = field(default_factory=dict)
    note: str = ""

    def text(self) -> str:
        parts = [f"{v:,} {k}" for k, v in self.counts.items()]
        return ", ".join(parts) + (f" ({self.note})" if self.note else "") if parts else self.note


@dataclass(frozen=True)
class Stage:
    """A row of the stage table."""

    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    sections: tuple[str, ...]
    body: Callable[[Workspace, StudyConfig, StageContext], StageOutput]
    help: str
    estimate: Callable[[Workspace, StudyConfig], Estimate] | None = None
    optional_inputs: tuple[str, ...] = ()
    settings: Callable[[StudyConfig], Any] | None = None
    preflight: Callable[[Workspace, StudyConfig], None] | None = None
    """Cheap checks run before any stage of a run starts (endpoints reachable, student
    folder present), so that bad input stops a study before it writes anything."""
    incomplete: Callable[[Workspace, StudyConfig], str | None] | None = None
    """Why the stage's finished outputs are not whole (``"3 of 48 judgments missing
    after transport errors"``), or ``None``. Asked only when the cache key matches: a
    stage whose work can fail transiently (a server that timed out) is then not "up to
    date" but re-run, and its body re-does only what is missing."""
    workers: Callable[[StudyConfig], int] | None = None
    """Worker processes the body starts (:func:`prefdelta.parallel.run_jobs`): when a stage
    of a run will use more than one, the workers' fork server is started before the first
    body that runs, so its imports overlap the earlier stages."""

    @property
    def module(self) -> str:
        return self.body.__module__

    def code(self) -> str:
        return code_version(self.module)

    def config(self, cfg: StudyConfig) -> Any:
        """The part of the spec this stage's results depend on."""
        if self.settings is not None:
            return self.settings(cfg)
        return {s: _dump(getattr(cfg, s)) for s in self.sections}

    def input_tables(self, ws: Workspace) -> list[str]:
        return [*self.inputs, *(t for t in self.optional_inputs if ws.has_table(t))]

    def key(self, ws: Workspace, cfg: StudyConfig, code: str | None = None) -> str:
        return ws.stage_key(self.name, self.input_tables(ws), self.config(cfg), code or self.code())

    def gaps(self, ws: Workspace, cfg: StudyConfig) -> str | None:
        """What the finished outputs lack (see ``incomplete``), or ``None`` when whole."""
        return None if self.incomplete is None else self.incomplete(ws, cfg)


def _dump(value: Any) -> Any:
    if isinstance(value, list):
        return [_dump(v) for v in value]
    if isinstance(value, dict):
        return {k: _dump(v) for k, v in value.items()}
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    return value


@dataclass(frozen=True)
class StageResult:
    stage: str
    skipped: bool
    seconds: float
    detail: str = ""


def uses_workers(stages: tuple[Stage, ...], cfg: StudyConfig) -> bool:
    """Whether some stage of ``stages`` runs its jobs on more than one process."""
    return any(s.workers is not None and s.workers(cfg) > 1 for s in stages)


def run_stage(
    ws: Workspace,
    stage: Stage,
    cfg: StudyConfig,
    servers: ServerPool,
    force: bool = False,
    warm_workers: bool = False,
) -> StageResult:
    """Run ``stage`` unless it is up to date; record its key and timing in the workspace.

    ``warm_workers``: start the worker processes' fork server before the body runs."""
    code = stage.code()
    key = stage.key(ws, cfg, code)
    if log.isEnabledFor(logging.DEBUG):  # why a stage re-ran or was skipped, for -v
        recorded = (ws.stage_record(stage.name) or {}).get("key") or "nothing (no finished run)"
        log.debug(f"{stage.name}: cache key {key}; last finished with {recorded}")
    if not force and ws.is_fresh(stage.name, key):
        gaps = stage.gaps(ws, cfg)
        if gaps is None:
            log.info(f"{stage.name}: up to date, skipped", extra={"style": "dim"})
            return StageResult(stage.name, True, 0.0)
        log.info(f"{stage.name}: incomplete ({gaps}); re-running for what is missing")
    ws.invalidate(stage.name)  # a body that fails or is killed leaves no "done" record behind
    for table in stage.outputs:
        ws.prepare_output(table)  # temp files of a killed writer, shards of an older version
    if warm_workers:
        from prefdelta.parallel import warm_up

        warm_up()
    start = time.perf_counter()
    out = stage.body(ws, cfg, StageContext(code=code, servers=servers))
    seconds = time.perf_counter() - start
    ws.mark_done(stage.name, key, tables=out.tables, paths=out.paths, seconds=seconds)
    log.info(f"{stage.name}: done in {seconds:.1f}s {out.detail}")
    return StageResult(stage.name, False, seconds, out.detail)
