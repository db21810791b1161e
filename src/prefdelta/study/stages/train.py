"""Stage: train."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from prefdelta.config import StudyConfig
from prefdelta.errors import UserError
from prefdelta.hashing import stable_hash
from prefdelta.progress import bar
from prefdelta.study.stages.base import StageResult, run_stage
from prefdelta.train import dpo as dpo_mod
from prefdelta.workspace import Workspace, code_version


def stage_train(ws: Workspace, cfg: StudyConfig, force: bool = False) -> StageResult:
    """Train the student with DPO on each configured selection; write ``runs``."""
    tc = cfg.train

    def body() -> tuple[list[str], list[Path], str]:
        sel = ws.read_table("selections", required_by="train")
        pairs = ws.read_table("pairs", required_by="train").set_index("pair_id")
        traces = ws.read_table("traces", required_by="train").set_index("trace_id")
        problems = ws.read_table("problems", required_by="train").set_index("problem_id")
        zoo = ws.read_table("zoo", required_by="train").set_index("generator_id")
        student = zoo.loc[tc.student]
        hp = dpo_mod.DPOHyper(
            beta=tc.beta,
            lr=tc.lr,
            epochs=tc.epochs,
            batch_size=tc.batch_size,
            nll_weight=tc.nll_weight,
            seed=tc.seed,
        )
        rows = []
        for strategy in tc.selections:
            ids = sel[sel["strategy"] == strategy]
            if ids.empty:
                raise UserError(
                    f"train.selections names {strategy!r}, but no such selection exists "
                    f"(have: {', '.join(sorted(sel['strategy'].unique()))})"
                )
            selection_id = ids["selection_id"].iloc[0]
            chosen_pairs = pairs.loc[ids["pair_id"]]
            run_id = f"dpo-{selection_id}-{stable_hash(student['key'], hp.__dict__, list(ids['pair_id']), length=8)}"
            run_dir = ws.runs_dir / run_id
            done = run_dir / "final" / "config.json"
            if not done.exists():
                prompts = problems.loc[chosen_pairs["problem_id"], "prompt"].tolist()
                chosen = traces.loc[chosen_pairs["chosen_trace_id"], "text"].tolist()
                rejected = traces.loc[chosen_pairs["rejected_trace_id"], "text"].tolist()
                steps = ((len(prompts) + hp.batch_size - 1) // hp.batch_size) * hp.epochs
                with bar(f"train: DPO on {selection_id}", steps) as advance:
                    dpo_mod.train_dpo(
                        student["path"],
                        prompts,
                        chosen,
                        rejected,
                        hp,
                        run_dir,
                        progress=lambda s, t: advance(1),
                    )
            last = json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[-1])
            rows.append(
                {
                    "run_id": run_id,
                    "algorithm": tc.algorithm,
                    "base_model": tc.student,
                    "selection_id": selection_id,
                    "strategy": strategy,
                    "n_pairs": len(chosen_pairs),
                    "hyper": json.dumps(hp.__dict__),
                    "seed": tc.seed,
                    "checkpoint": str(run_dir / "final"),
                    "metrics": str(run_dir / "metrics.jsonl"),
                    "final_loss": last["loss"],
                    "final_margin": last["margin"],
                }
            )
        ws.write_table("runs", pd.DataFrame(rows))
        return ["runs"], [Path(r["checkpoint"]) for r in rows], f"({len(rows)} runs)"

    return run_stage(
        ws,
        "train",
        ["selections", "pairs", "traces", "zoo"],
        tc.model_dump(),
        code_version(dpo_mod),
        body,
        force,
    )
