"""Stage: generate."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd

from prefdelta import zoo as zoo_mod
from prefdelta.config import StudyConfig
from prefdelta.generate import hf as gen_hf
from prefdelta.hashing import stable_hash
from prefdelta.judge import oracle
from prefdelta.progress import bar
from prefdelta.study.stages.base import StageResult, problems_of, run_stage
from prefdelta.workspace import Workspace, code_version
from prefdelta.worlds import arith


def stage_generate(ws: Workspace, cfg: StudyConfig, force: bool = False) -> StageResult:
    """Sample traces of every generator on the pair problems; write ``traces`` and ``generators``."""
    g = cfg.generate

    def body() -> tuple[list[str], list[Path], str]:
        problems = problems_of(ws.read_table("problems", required_by="generate"), "pairs")
        by_id = {p.problem_id: p for p in problems}
        zoo = ws.read_table("zoo", required_by="generate")
        keep = []
        for _, z in zoo.iterrows():
            shard = f"{z['generator_id']}-{stable_hash(z['key'], g.model_dump(), [p.problem_id for p in problems])}"
            keep.append(shard)
            if shard in ws.shards("traces"):
                continue
            model, tokenizer = zoo_mod.load_model(z["path"])
            jobs = [(p, s) for s in range(g.samples) for p in problems]
            with bar(f"generate: {z['generator_id']}", len(jobs)) as advance:
                outs = gen_hf.generate_all(
                    model,
                    tokenizer,
                    [arith.prompt_text(p.text) for p, _ in jobs],
                    batch_size=g.batch_size,
                    max_new_tokens=g.max_new_tokens,
                    temperature=g.temperature,
                    top_p=g.top_p,
                    seed=g.seed,
                    on_batch=advance,
                )
            now = time.time()
            rows = [
                {
                    "trace_id": stable_hash(z["generator_id"], p.problem_id, s, g.seed),
                    "problem_id": p.problem_id,
                    "generator_id": z["generator_id"],
                    "sample": s,
                    "seed": g.seed,
                    "text": o.text,
                    "finish_reason": o.finish_reason,
                    "prompt_tokens": o.prompt_tokens,
                    "n_tokens": o.completion_tokens,
                    "created_at": now,
                }
                for (p, s), o in zip(jobs, outs, strict=True)
            ]
            ws.write_shard("traces", shard, pd.DataFrame(rows))
        ws.prune_shards("traces", keep)
        traces = ws.read_table("traces")
        correct = [
            oracle.is_correct(by_id[pid], t)
            for pid, t in zip(traces["problem_id"], traces["text"], strict=True)
        ]
        acc = pd.Series(correct, index=traces.index).groupby(traces["generator_id"]).mean()
        gens = pd.DataFrame(
            {
                "generator_id": zoo["generator_id"],
                "family": zoo["family"],
                "params": zoo["params"],
                "backend": "hf",
                "model": zoo["path"],
                "sampling": json.dumps(g.model_dump()),
                "capability": [float(acc.get(i, 0.0)) for i in zoo["generator_id"]],
            }
        )
        ws.write_table("generators", gens)
        return ["traces", "generators"], [], f"({len(traces)} traces)"

    return run_stage(ws, "generate", ["problems", "zoo"], g.model_dump(), code_version(gen_hf), body, force)
