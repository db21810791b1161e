"""Stage: generate.

Samples traces of every zoo model (``hf`` backend on the saved folder) and of every
external generator of ``generate.generators`` on the pair problems; writes ``traces``
(with provenance, see :mod:`prefdelta.generate.runner`) and ``generators`` (with each
generator's capability: its exact-oracle accuracy on these problems). Killed and re-run,
it resumes per (generator, problem, sample).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from prefdelta.config import StudyConfig
from prefdelta.generate import base as gen_base
from prefdelta.generate import hf as gen_hf
from prefdelta.generate import prompts as gen_prompts
from prefdelta.generate import runner as gen_runner
from prefdelta.generate.factory import has_chat_template, make_backend
from prefdelta.judge import oracle
from prefdelta.progress import bar
from prefdelta.settings.generate import SamplingSpec
from prefdelta.study.stages.base import StageResult, problems_of, run_stage
from prefdelta.workspace import Workspace, code_version


def stage_generate(ws: Workspace, cfg: StudyConfig, force: bool = False) -> StageResult:
    """Sample traces of every generator on the pair problems; write ``traces`` and ``generators``."""
    g = cfg.generate
    sampling = SamplingSpec(
        samples=g.samples, temperature=g.temperature, top_p=g.top_p, max_tokens=g.max_new_tokens, seed=g.seed
    )

    def body() -> tuple[list[str], list[Path], str]:
        table = ws.read_table("problems", required_by="generate")
        pair_rows = table[table["split"] == "pairs"]
        by_id = {p.problem_id: p for p in problems_of(table, "pairs")}
        zoo = ws.read_table("zoo", required_by="generate")
        gens: list[dict[str, object]] = []
        keep: set[str] = set()
        for _, z in zoo.iterrows():
            backend = gen_hf.HFBackend(z["path"], device="cpu", dtype="float32", batch_size=g.batch_size)
            run = gen_runner.GeneratorRun(z["generator_id"], backend, str(z["path"]), sampling)
            traces = _sample(ws, run, pair_rows)
            keep.add(z["generator_id"])
            gens.append(_generator_row(run, str(z["family"]), float(z["params"]), traces, by_id))
        for spec in g.generators:
            backend = make_backend(spec)
            chat = spec.prompt_style == "chat" or (spec.prompt_style == "auto" and has_chat_template(backend))
            run = gen_runner.GeneratorRun(
                spec.id,
                backend,
                spec.model,
                spec.sampling_for(sampling),
                chat=chat,
                template=spec.template,
                provenance=spec.model_dump(exclude={"id", "family", "params"}),
            )
            traces = _sample(ws, run, pair_rows)
            keep.add(spec.id)
            gens.append(_generator_row(run, spec.family, spec.params, traces, by_id))
        for table_name in (gen_runner.TRACES, gen_runner.ERRORS):  # generators no longer in the config
            ws.prune_shards(
                table_name, [s for s in ws.shards(table_name) if gen_runner.shard_generator(s) in keep]
            )
        ws.write_table("generators", pd.DataFrame(gens))
        n = sum(int(r["n_traces"]) for r in gens)
        return ["traces", "generators"], [], f"({n} traces)"

    version = code_version(gen_hf, gen_base, gen_runner, gen_prompts)
    return run_stage(ws, "generate", ["problems", "zoo"], g.model_dump(), version, body, force)


def _sample(ws: Workspace, run: gen_runner.GeneratorRun, problems: pd.DataFrame) -> pd.DataFrame:
    total = len(problems) * run.sampling.samples
    with bar(f"generate: {run.generator_id}", total) as advance:
        return gen_runner.generate_traces(ws, run, problems, flush_every=512, progress=advance)


def _generator_row(
    run: gen_runner.GeneratorRun, family: str, params: float | None, traces: pd.DataFrame, by_id: dict
) -> dict[str, object]:
    """One ``generators`` row; capability = oracle accuracy over the traces (errors excluded)."""
    correct = [
        oracle.is_correct(by_id[p], t) for p, t in zip(traces["problem_id"], traces["text"], strict=True)
    ]
    return {
        "generator_id": run.generator_id,
        "family": family,
        "params": params,
        "backend": getattr(run.backend, "name", "?"),
        "model": run.model,
        "sampling": json.dumps(run.sampling.model_dump(), sort_keys=True),
        "capability": float(sum(correct) / len(correct)) if correct else 0.0,
        "n_traces": len(traces),
    }
