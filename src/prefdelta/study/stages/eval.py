"""Stage: eval."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from prefdelta import zoo as zoo_mod
from prefdelta.config import StudyConfig
from prefdelta.evaluate import arith as eval_arith
from prefdelta.evaluate import runner
from prefdelta.evaluate.models import ModelSpec, make_backend
from prefdelta.evaluate.suites import load_suite
from prefdelta.generate import hf as gen_hf
from prefdelta.hashing import stable_hash
from prefdelta.progress import bar, info
from prefdelta.study.stages.base import StageResult, problems_of, run_stage
from prefdelta.workspace import Workspace, code_version

# Shard prefixes of the suite runner and the lm-eval bridge (their ids include the suite).
FOREIGN = (runner.SHARD_PREFIX, "lmeval-")


def stage_eval(ws: Workspace, cfg: StudyConfig, force: bool = False) -> StageResult:
    """Greedy accuracy of every generator and every run on every suite; write ``evals``."""
    ec = cfg.eval

    def body() -> tuple[list[str], list[Path], str]:
        problems = ws.read_table("problems", required_by="eval")
        zoo = ws.read_table("zoo", required_by="eval")
        models = [(r["generator_id"], r["path"], r["key"]) for _, r in zoo.iterrows()]
        if ws.has_table("runs"):
            runs = ws.read_table("runs")
            models += [(r["run_id"], r["checkpoint"], r["run_id"]) for _, r in runs.iterrows()]
        suites = {s.name: (s.domain, problems_of(problems, s.name)) for s in ec.suites}
        benchmark_suites = [load_suite(name) for name in ec.benchmark_suites]
        keep = []
        for model_id, path, key in models:
            shard = f"{model_id}-{stable_hash(key, ec.model_dump())}"
            keep.append(shard)
            if shard in ws.shards("evals"):
                continue
            model, tokenizer = zoo_mod.load_model(path)
            rows, samples = [], []
            total = sum(len(ps) for _, ps in suites.values())
            with bar(f"eval: {model_id}", total) as advance:
                for name, (domain, ps) in suites.items():
                    correct, texts = eval_arith.evaluate_on_problems(
                        model,
                        tokenizer,
                        ps,
                        max_new_tokens=ec.max_new_tokens,
                        batch_size=ec.batch_size,
                        on_batch=advance,
                    )
                    rows.append(eval_arith.accuracy_row(model_id, name, domain, correct, checkpoint_hash=key))
                    samples += [
                        {
                            "model_id": model_id,
                            "suite": name,
                            "problem_id": p.problem_id,
                            "text": t,
                            "correct": c,
                        }
                        for p, t, c in zip(ps, texts, correct, strict=True)
                    ]
            ws.write_shard("eval_samples", shard, pd.DataFrame(samples))
            ws.write_shard("evals", shard, pd.DataFrame(rows))
        for model_id, path, key in models:
            for suite in benchmark_suites:
                spec = ModelSpec(str(path), model_id=model_id)
                runner.evaluate_suite(
                    ws,
                    suite,
                    lambda spec=spec: make_backend(spec, ec.batch_size),
                    model_id,
                    key,
                    ec.data_dir,
                    ec.limit,
                    workers=ec.sandbox_workers,
                    log=info,
                )
        # Shards written outside the stage (`prefdelta eval run`, `eval lm-eval`) are kept.
        foreign = [s for s in ws.shards("evals") + ws.shards("eval_samples") if s.startswith(FOREIGN)]
        ws.prune_shards("evals", keep + foreign)
        ws.prune_shards("eval_samples", keep + foreign)
        return ["evals", "eval_samples"], [], f"({len(models)} models)"

    inputs = ["problems", "zoo"] + (["runs"] if ws.has_table("runs") else [])
    return run_stage(
        ws, "eval", inputs, ec.model_dump(), code_version(eval_arith, gen_hf, runner), body, force
    )
