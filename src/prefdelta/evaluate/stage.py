"""Stage: eval — every model of the study on every suite, through one runner.

Models (``eval.include`` and ``eval.models``): each generator (a zoo model on ``hf``, a
user's folder or hub id, a vLLM model, a served endpoint), the student before training,
every trained run (a LoRA adapter is applied to its base), and any further model the
spec lists. Suites (``eval.suites``): arith suites, benchmark suites and lm-eval tasks,
each in- or out-of-domain. Every suite but lm-eval's goes through
:func:`prefdelta.evaluate.runner.evaluate_suite`; each benchmark of each model is one
shard, so a killed stage resumes and a new model evaluates only itself.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from prefdelta.errors import UserError
from prefdelta.evaluate import runner
from prefdelta.evaluate.models import ModelSpec, checkpoint_hash
from prefdelta.hashing import stable_hash
from prefdelta.progress import bar
from prefdelta.study.stage import Estimate, Stage, StageContext, StageOutput
from prefdelta.workspace import Workspace

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from prefdelta.generate.base import Backend
    from prefdelta.study.spec import StudyConfig


@dataclass(frozen=True)
class EvalTarget:
    """One model to evaluate: its id in the tables, how to load it, and its identity."""

    model_id: str
    spec: ModelSpec
    identity: str
    make: Callable[[], Backend]


def _hf_target(model_id: str, spec: ModelSpec, identity: str, batch_size: int) -> EvalTarget:
    from prefdelta.evaluate.models import make_backend

    return EvalTarget(model_id, spec, identity, lambda: make_backend(spec, batch_size))


def targets(ws: Workspace, cfg: StudyConfig, ctx: StageContext) -> list[EvalTarget]:
    """The models this spec evaluates, in order: generators, student, runs, extra models."""
    ec = cfg.eval
    out: list[EvalTarget] = []
    seen: set[str] = set()

    def add(t: EvalTarget) -> None:
        if t.model_id not in seen:
            seen.add(t.model_id)
            out.append(t)

    if "generators" in ec.include:
        from prefdelta.generate.factory import make_backend as gen_backend
        from prefdelta.generate.stage import resolve_generator

        zoo = ws.read_table("zoo") if ws.has_table("zoo") else None
        for g in cfg.generators:
            concrete, _, _, provenance = resolve_generator(g, zoo, ws, ctx.servers, ec.batch_size)
            ident = stable_hash(provenance)
            if concrete.backend == "hf":
                add(_hf_target(g.id, ModelSpec(str(concrete.model), model_id=g.id), ident, ec.batch_size))
            else:
                url = concrete.openai.base_urls[0] if concrete.openai else None
                spec = ModelSpec(str(concrete.model), concrete.backend or "hf", url=url, model_id=g.id)
                add(EvalTarget(g.id, spec, ident, lambda c=concrete: gen_backend(c)))
    if "student" in ec.include and cfg.student.model is not None:
        from prefdelta.train.stage import resolve_student

        sid, path, key = resolve_student(ws, cfg)
        add(_hf_target(sid, ModelSpec(path, model_id=sid), key, ec.batch_size))
    if "runs" in ec.include and ws.has_table("runs"):
        for _, r in ws.read_table("runs").iterrows():
            ckpt = str(ws.resolve(r["checkpoint"]))
            base = str(ws.resolve(r["base_path"])) if bool(r.get("adapter", False)) else None
            add(
                _hf_target(
                    r["run_id"], ModelSpec(ckpt, base=base, model_id=r["run_id"]), r["run_id"], ec.batch_size
                )
            )
    for i, m in enumerate(ec.models):
        url = m.url
        if m.server is not None:
            url = ctx.servers.url(m.server, f"eval.models.{i}.server")
        spec = ModelSpec(m.model, m.backend, m.base, url, m.id)
        ident = checkpoint_hash(spec)
        if m.backend == "hf":
            add(_hf_target(m.id, spec, ident, ec.batch_size))
        else:
            from prefdelta.evaluate.models import make_backend

            add(EvalTarget(m.id, spec, ident, lambda s=spec: make_backend(s, ec.batch_size)))
    return out


def _chat(style: str) -> Callable[[Backend], bool] | bool:
    if style != "auto":
        return style == "chat"
    from prefdelta.generate.factory import has_chat_template

    return has_chat_template


def body(ws: Workspace, cfg: StudyConfig, ctx: StageContext) -> StageOutput:
    ec = cfg.eval
    if not ec.suites:  # a study without evaluation: empty tables, so the report still runs
        import pandas as pd

        cols = ["model_id", "checkpoint_hash", "suite", "domain", "benchmark", "level", "metric", "value", "n",
                "ci_low", "ci_high"]  # fmt: skip
        if not ws.has_table("evals"):
            ws.write_table("evals", pd.DataFrame(columns=cols))
        return StageOutput(["evals"], [], "(no suites in the spec: nothing to evaluate)")
    models = targets(ws, cfg, ctx)
    if not models:
        raise UserError("eval: no model to evaluate (check eval.include and eval.models)")
    suites = [(e, e.resolve() if e.lm_eval is None else None) for e in ec.suites]
    chat = _chat(ec.prompt_style)
    local = [t for t in models if t.spec.backend == "hf"]
    remote = [t for t in models if t.spec.backend != "hf"]
    if remote:
        with bar(f"eval: {len(remote)} served models × {len(suites)} suites", len(remote)) as advance:
            for t in remote:
                _evaluate_model(ws, cfg, t, suites, chat, ctx.code)
                advance(1)
    from prefdelta.parallel import run_jobs
    from prefdelta.train.stage import twin_sources

    # a run that repeats another (same pairs, same hyper-parameters) is evaluated once
    sources = twin_sources(ws.read_table("runs")["run_id"]) if ws.has_table("runs") else {}
    by_id = {t.model_id: t for t in local}
    source_of = {t.model_id: by_id.get(sources.get(t.model_id, t.model_id), t) for t in local}
    twins = [(source_of[t.model_id], t) for t in local if source_of[t.model_id] is not t]
    local = [t for t in local if source_of[t.model_id] is t]
    jobs = [
        {
            "ws": str(ws.root),
            "spec": cfg.model_dump(mode="json"),
            "model_id": t.model_id,
            "model": {"model": t.spec.model, "base": t.spec.base, "model_id": t.spec.model_id},
            "identity": t.identity,
            "code": ctx.code,
        }
        for t in local
    ]
    run_jobs(eval_job, jobs, ec.workers, f"eval: models × {len(suites)} suites")
    for source, t in twins:
        _evaluate_model(ws, cfg, t, suites, chat, ctx.code, twin=(source.model_id, source.identity))
    _drop_retired_runs(ws)
    return StageOutput(["evals", "eval_samples"], [], f"({len(models)} models × {len(suites)} suites)")


def eval_job(job: dict) -> None:
    """Evaluate one local (hf) model on every suite: the worker function of ``eval.workers``."""
    from prefdelta.study.spec import StudyConfig

    cfg = StudyConfig.model_validate(job["spec"])
    ws = Workspace(job["ws"])
    t = _hf_target(job["model_id"], ModelSpec(**job["model"]), job["identity"], cfg.eval.batch_size)
    suites = [(e, e.resolve() if e.lm_eval is None else None) for e in cfg.eval.suites]
    _evaluate_model(ws, cfg, t, suites, _chat(cfg.eval.prompt_style), job["code"])


def _evaluate_model(
    ws: Workspace, cfg: StudyConfig, t: EvalTarget, suites: list, chat, code: str,
    twin: tuple[str, str] | None = None,
) -> None:  # fmt: skip
    """One model on every suite; its backend is loaded only if some benchmark is not cached."""
    ec = cfg.eval
    cache: dict[str, Backend] = {}

    def factory() -> Backend:
        if "b" not in cache:
            cache["b"] = t.make()
        return cache["b"]

    for suite in (suite for _, suite in suites if suite is not None):
        runner.evaluate_suite(
            ws,
            suite,
            factory,
            t.model_id,
            t.identity,
            cfg.data_dir,
            ec.limit,
            workers=ec.sandbox_workers,
            chat=chat,
            code=code,
            adjust=ec.benchmark_overrides,
            twin=twin,
        )
    lm_entries = [e for e, suite in suites if suite is None]
    if lm_entries:
        _lm_eval(ws, cfg, t, lm_entries, code)


def _drop_retired_runs(ws: Workspace) -> None:
    """Remove the rows of runs this workspace trained earlier that the runs table no longer lists
    (a changed selection or hyper-parameter): the tables then hold the study's models, plus any
    model evaluated by hand, and nothing stale."""
    import pandas as pd

    current = set(ws.read_table("runs")["run_id"]) if ws.has_table("runs") else set()
    retired = {d.name for d in ws.runs_dir.iterdir() if d.is_dir()} - current
    if not retired:
        return
    for table in ("evals", "eval_samples"):
        for shard in ws.shards(table):
            path = ws.shard_path(table, shard)
            ids = pd.read_parquet(path, columns=["model_id"])["model_id"]
            if len(ids) and set(ids) <= retired:
                path.unlink(missing_ok=True)


def _lm_eval(ws: Workspace, cfg: StudyConfig, t: EvalTarget, entries: list, code: str) -> None:
    """The spec's lm-eval tasks on one model, in one lm-eval run; one shard per task."""
    from prefdelta.evaluate import lmeval

    ec = cfg.eval
    served = ec.lm_eval_served.model_dump(mode="json") if t.spec.backend == "openai" else None
    keys = {
        e.lm_eval: stable_hash(
            t.model_id, t.identity, e.model_dump(mode="json"), ec.limit, ec.max_tokens, code, served
        )
        for e in entries
    }
    todo = [e for e in entries if lmeval.shard_name(t.model_id, keys[e.lm_eval]) not in ws.shards("evals")]
    groups: dict[int | None, list] = {}
    for e in todo:  # one lm-eval run per distinct limit
        groups.setdefault(e.n or ec.limit, []).append(e)
    for limit, group in groups.items():
        tasks = [e.lm_eval for e in group]
        log.info(f"eval: {t.model_id}: lm-eval {', '.join(tasks)} (limit {limit})")
        gen = {"max_gen_toks": ec.max_tokens} if ec.max_tokens else None
        device = "cuda" if _cuda() else "cpu"
        results = lmeval.run(
            t.spec,
            tasks,
            cfg.data_dir or "",
            limit,
            ec.lm_eval_batch_size,
            device,
            gen,
            served=ec.lm_eval_served,
            out_dir=lmeval.output_dir(ws, t.model_id) if ec.lm_eval_output else None,
            log_samples_file=ec.lm_eval_log_samples,
        )
        for e in group:
            lmeval.write(
                ws,
                lmeval.task_results(results, e.lm_eval),
                t.model_id,
                t.identity,
                suite=e.label,
                domain=e.domain,
                key=keys[e.lm_eval],
                replace=True,
            )


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def estimate(ws: Workspace, cfg: StudyConfig) -> Estimate:
    ec = cfg.eval
    n_models = len(cfg.generators) if "generators" in ec.include else 0
    n_models += int("student" in ec.include and cfg.student.model is not None)
    if "runs" in ec.include:
        from prefdelta.train.stage import estimate as train_estimate

        n_models += train_estimate(ws, cfg).counts.get("training runs", 0)
    n_models += len(ec.models)
    requests = 0
    for e in ec.suites:
        if e.lm_eval is not None:
            requests += e.n or ec.limit or 0
            continue
        for b in e.resolve().benchmarks:
            n = b.options.get("n") or min(x for x in (ec.limit, b.limit, 10**9) if x is not None)
            if n == 10**9:
                n = _size(b, cfg.data_dir)
            requests += n * (ec.samples or b.samples or 1)
    return Estimate(
        {"models": n_models, "generation requests": n_models * requests}, f"{len(ec.suites)} suites"
    )


def _size(bench, data_dir: str | None) -> int:
    from prefdelta.sources.registry import load_source

    try:
        return len(load_source(bench.source, bench.split, data_dir, **bench.options))
    except UserError:
        return 0


def _settings(cfg: StudyConfig) -> dict[str, object]:
    return {
        "eval": cfg.eval.model_dump(mode="json"),
        "generators": [g.model_dump(mode="json") for g in cfg.generators],
        "student": cfg.student.model,
        "data_dir": str(Path(cfg.data_dir).resolve()) if cfg.data_dir else "",
    }


STAGE = Stage(
    name="eval",
    inputs=(),
    optional_inputs=("zoo", "runs"),
    outputs=("evals", "eval_samples"),
    sections=("eval",),
    body=body,
    help="Evaluate the generators, the student and every trained run on in- and out-of-domain suites.",
    workers=lambda cfg: cfg.eval.workers,
    estimate=estimate,
    settings=_settings,
)
