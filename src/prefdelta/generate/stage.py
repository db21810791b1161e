"""Stage: generate — sample traces of every generator on the pair problems.

Every generator, whatever its backend (a zoo model and a user's HF folder both run on
``hf``; ``vllm``; any OpenAI-compatible endpoint, or a server the study starts), goes
through the same runner (:mod:`prefdelta.generate.runner`), which writes ``traces`` and
``generation_errors`` and resumes per (generator, problem, sample) after a kill. Then
``generators`` gets one row per generator: family, parameter count, backend, model,
sampling, and its **capability** — the accuracy of its traces by the exact grader of
each problem's source.

Samples that still failed after the backend's retries make the stage *incomplete*
(``Stage.incomplete``): a plain re-run asks for exactly those samples, with the same
seeds, and the stages after it re-run on the whole ``traces``. A generator whose share
of failed samples exceeds ``generate.max_error_rate`` fails the stage (exit 2) after
every generator's rows are written, so the re-run after a fix resumes from them
(:mod:`prefdelta.generate.health`).
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING

import pandas as pd

from prefdelta.errors import UserError
from prefdelta.generate import runner as gen_runner
from prefdelta.generate.config import GeneratorSpec, OpenAIOptions, SamplingSpec
from prefdelta.generate.health import error_rate_problem, generation_gaps
from prefdelta.progress import bar
from prefdelta.study.stage import Estimate, Stage, StageContext, StageOutput
from prefdelta.workspace import Workspace

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from prefdelta.study.servers import ServerPool
    from prefdelta.study.spec import StudyConfig


def resolve_generator(
    spec: GeneratorSpec, zoo: pd.DataFrame | None, ws: Workspace, servers: ServerPool, batch_size: int
) -> tuple[GeneratorSpec, str, float | None, dict[str, object]]:
    """``spec`` made concrete: a zoo id becomes its folder on ``hf``, a server its URL.

    Returns the concrete spec, the family and the parameter count for the tables, and the
    provenance that identifies the generator's texts (the spec as written — not a port
    or a folder location that changes from run to run — plus the zoo model's key).
    """
    family, params = spec.family, spec.params
    update: dict[str, object] = {}
    # what decides the texts: not the labels, nor the error limit (a changed limit keeps the traces)
    provenance: dict[str, object] = spec.model_dump(
        mode="json", exclude={"id", "family", "params", "max_error_rate"}
    )
    if spec.backend == "zoo":
        if zoo is None or spec.id not in set(zoo["generator_id"]):
            raise UserError(f"generators: {spec.id!r} is not in the zoo table; run the zoo stage first")
        row = zoo.set_index("generator_id").loc[spec.id]
        update = {"backend": "hf", "model": str(ws.resolve(row["path"])), "prompt_style": "completion"}
        provenance["zoo_key"] = str(row["key"])
        family = family or str(row["family"])
        params = params if params is not None else float(row["params"])
    elif spec.backend == "openai" and spec.server is not None:
        options = (spec.openai or OpenAIOptions()).model_copy(
            update={"base_urls": [servers.url(spec.server, f"generators ({spec.id}).server")]}
        )
        update = {"openai": options, "model": spec.model or servers.model(spec.server), "server": None}
    if spec.backend in ("zoo", "hf") and spec.hf.batch_size is None:
        hf = spec.hf.model_copy(update={"batch_size": batch_size})
        update["hf"] = hf
    concrete = spec.model_copy(update=update)
    return concrete, family, params, provenance


def make_run(
    spec: GeneratorSpec, sampling: SamplingSpec, provenance: dict[str, object], model_label: str | None = None
) -> gen_runner.GeneratorRun:
    """The runner's :class:`GeneratorRun` for a concrete spec (the backend is loaded here).

    ``model_label``: what the traces' ``model`` column says (a zoo folder relative to the
    workspace, so that a moved workspace keeps its keys).
    """
    from prefdelta.generate.factory import has_chat_template, make_backend

    if spec.backend == "openai":
        from prefdelta.study.servers import check_reachable

        assert spec.openai is not None
        for url in spec.openai.base_urls:
            check_reachable(url, f"generators ({spec.id}).openai.base_urls")
    backend = make_backend(spec)
    chat = spec.prompt_style == "chat" or (spec.prompt_style == "auto" and has_chat_template(backend))
    return gen_runner.GeneratorRun(
        spec.id,
        backend,
        model_label or str(spec.model),
        spec.sampling_for(sampling),
        chat=chat,
        template=spec.template,
        provenance=provenance,
    )


def generate_job(job: dict) -> pd.DataFrame:
    """Sample one local generator (the worker function of ``generate.workers``); its traces."""
    ws = Workspace(job["ws"])
    spec = GeneratorSpec.model_validate(job["spec"])
    run = make_run(spec, SamplingSpec.model_validate(job["sampling"]), job["provenance"], job["label"])
    problems = ws.read_table("problems", required_by="generate")
    return gen_runner.generate_traces(ws, run, problems, flush_every=job["flush_every"])


def _sample_local(
    ws: Workspace, cfg: StudyConfig, zoo: pd.DataFrame | None, ctx: StageContext
) -> dict[str, pd.DataFrame]:
    """Traces of the local generators, sampled on ``generate.workers`` processes (empty when
    there are fewer than two of them, or one worker): generator id → its traces."""
    from prefdelta.parallel import run_jobs

    g = cfg.generate
    local = [s for s in cfg.generators if s.backend in ("zoo", "hf")]
    if g.workers <= 1 or len(local) < 2:
        return {}
    jobs = []
    for spec in local:
        concrete, _, _, provenance = resolve_generator(spec, zoo, ws, ctx.servers, g.batch_size)
        jobs.append(
            {
                "ws": str(ws.root),
                "spec": concrete.model_dump(mode="json"),
                "sampling": g.sampling().model_dump(mode="json"),
                "provenance": {**provenance, "code": ctx.code},
                "label": ws.relative(str(concrete.model)) if spec.backend == "zoo" else None,
                "flush_every": g.flush_every,
            }
        )
    traces = run_jobs(generate_job, jobs, g.workers, "generate: local generators")
    return {s.id: t for s, t in zip(local, traces, strict=True)}


def body(ws: Workspace, cfg: StudyConfig, ctx: StageContext) -> StageOutput:
    from prefdelta.evaluate.grading import grade_traces

    if not cfg.generators:
        raise UserError("generators: the spec names no generator (zoo ids or models)")
    g = cfg.generate
    problems = ws.read_table("problems", required_by="generate")
    zoo = ws.read_table("zoo") if ws.has_table("zoo") else None
    rows: list[dict[str, object]] = []
    failing: list[str] = []
    sampled = _sample_local(ws, cfg, zoo, ctx)
    for i, spec in enumerate(cfg.generators):
        concrete, family, params, provenance = resolve_generator(spec, zoo, ws, ctx.servers, g.batch_size)
        label = ws.relative(str(concrete.model)) if spec.backend == "zoo" else None
        if spec.id in sampled:
            traces = sampled[spec.id]
        else:
            run = make_run(concrete, g.sampling(), {**provenance, "code": ctx.code}, label)
            total = len(problems) * run.sampling.samples
            with bar(f"generate: {spec.id}", total) as advance:
                traces = gen_runner.generate_traces(
                    ws, run, problems, flush_every=g.flush_every, progress=advance
                )
            del run  # free the model before the next generator loads
        errors = ws.read_table(gen_runner.ERRORS) if ws.has_table(gen_runner.ERRORS) else None
        reasons = (
            pd.Series(dtype="string")
            if errors is None
            else errors.loc[errors["generator_id"] == spec.id, "error"]
        )
        n_errors = len(reasons)
        if spec.max_error_rate is None:
            limit, field = g.max_error_rate, "generate.max_error_rate"
        else:
            limit, field = spec.max_error_rate, f"generators.{i}.max_error_rate"
        problem = error_rate_problem(reasons, len(traces), spec.id, limit, field)
        if problem is not None:
            failing.append(problem)
        grades = grade_traces(problems, traces) if len(traces) else []
        capability = sum(x.correct for x in grades) / len(grades) if grades else float("nan")
        rows.append(
            {
                "generator_id": spec.id,
                "family": family,
                "params": params,
                "backend": spec.backend,
                "model": label or str(concrete.model),
                "sampling": json.dumps(concrete.sampling_for(g.sampling()).model_dump(), sort_keys=True),
                "capability": capability,
                "n_traces": len(traces),
                "n_errors": n_errors,
            }
        )
        log.info(f"generate: {spec.id}: {len(traces)} traces, {n_errors} errors, capability {capability:.3f}")
    keep = {s.id for s in cfg.generators}
    for table in (gen_runner.TRACES, gen_runner.ERRORS):  # generators no longer in the spec
        ws.prune_shards(table, [s for s in ws.shards(table) if gen_runner.shard_generator(s) in keep])
    ws.write_table("generators", pd.DataFrame(rows))
    if failing:  # after every generator's rows are written: the re-run resumes from them
        raise UserError(" | ".join(failing))
    n = sum(int(r["n_traces"]) for r in rows)
    return StageOutput(["traces", "generators"], [], f"({n} traces)")


def incomplete(ws: Workspace, cfg: StudyConfig) -> str | None:
    """Samples a failed request left without a trace (the stage is then re-run for them), or ``None``."""
    return generation_gaps(ws)


def estimate(ws: Workspace, cfg: StudyConfig) -> Estimate:
    from prefdelta.problems.stage import count_problems

    n_problems = len(ws.read_table("problems")) if ws.has_table("problems") else count_problems(cfg)
    requests = tokens = 0
    for spec in cfg.generators:
        s = spec.sampling_for(cfg.generate.sampling())
        requests += n_problems * s.samples
        tokens += n_problems * s.samples * s.max_tokens
    return Estimate(
        {"generation requests": requests, "completion tokens at most": tokens},
        f"{len(cfg.generators)} generators × {n_problems} problems",
    )


def preflight(ws: Workspace, cfg: StudyConfig) -> None:
    """Every endpoint given by URL answers (servers the study starts are checked when started)."""
    from prefdelta.study.servers import check_reachable

    for g in cfg.generators:
        if g.backend == "openai" and g.server is None and g.openai is not None:
            for url in g.openai.base_urls:
                check_reachable(url, f"generators ({g.id}).openai.base_urls")


def _settings(cfg: StudyConfig) -> dict[str, object]:
    return {
        "generators": [g.model_dump(mode="json") for g in cfg.generators],
        "generate": cfg.generate.model_dump(mode="json"),
        "servers": {k: v.model_dump(mode="json") for k, v in cfg.servers.items()},
    }


STAGE = Stage(
    name="generate",
    inputs=("problems",),
    optional_inputs=("zoo",),
    outputs=("traces", "generators"),
    sections=("generators", "generate", "servers"),
    body=body,
    help="Sample reasoning traces from every generator on the pair problems; measure capability.",
    workers=lambda cfg: cfg.generate.workers,
    estimate=estimate,
    settings=_settings,
    preflight=preflight,
    incomplete=incomplete,
)
