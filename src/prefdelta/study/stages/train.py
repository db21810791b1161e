"""Stage: train."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pandas as pd

from prefdelta import select as select_mod
from prefdelta.config import StudyConfig
from prefdelta.errors import UserError
from prefdelta.hashing import stable_hash
from prefdelta.progress import bar
from prefdelta.study.stages.base import StageResult, run_stage
from prefdelta.train import batching, dpo, logprobs, losses, trainer
from prefdelta.train.trainer import TrainHyper
from prefdelta.workspace import Workspace, code_version


def hyper_from_config(tc) -> TrainHyper:
    """The run's :class:`TrainHyper` from the ``train:`` section (same field names)."""
    names = {f.name for f in dataclasses.fields(TrainHyper)}
    return TrainHyper(**{k: v for k, v in tc.model_dump().items() if k in names})


def pair_texts(
    chosen_pairs: pd.DataFrame, traces: pd.DataFrame, problems: pd.DataFrame
) -> tuple[list[str], list[str], list[str]]:
    """Prompts, chosen and rejected texts of ``chosen_pairs`` (traces and problems indexed by id)."""
    return (
        problems.loc[chosen_pairs["problem_id"], "prompt"].tolist(),
        traces.loc[chosen_pairs["chosen_trace_id"], "text"].tolist(),
        traces.loc[chosen_pairs["rejected_trace_id"], "text"].tolist(),
    )


def _one_run(
    ws: Workspace,
    student: pd.Series,
    variant: str,
    hp: TrainHyper,
    selection_id: str,
    strategy: str,
    chosen_pairs: pd.DataFrame,
    traces: pd.DataFrame,
    problems: pd.DataFrame,
) -> dict[str, object]:
    """Train (or reuse) one run and return its ``runs`` row."""
    key = stable_hash(student["key"], dataclasses.asdict(hp), list(chosen_pairs.index), length=8)
    run_id = f"{variant}-{selection_id}-seed{hp.seed}-{key}"
    run_dir = ws.runs_dir / run_id
    done = run_dir / "final" / "config.json"
    report_file = run_dir / "truncation.json"
    if not done.exists():
        prompts, chosen, rejected = pair_texts(chosen_pairs, traces, problems)
        steps = -(-len(prompts) // (hp.batch_size * hp.grad_accum)) * hp.epochs
        with bar(f"train: {variant} on {selection_id}, seed {hp.seed}", steps) as advance:
            _, report = dpo.train_on_texts(
                student["path"],
                prompts,
                chosen,
                rejected,
                hp,
                run_dir,
                progress=lambda s, t: advance(1),
                ref_cache_root=ws.cache_dir / "refcache",
            )
        report_file.write_text(
            json.dumps({"truncated": len(report.truncated), "dropped": len(report.dropped)})
        )
    trunc = json.loads(report_file.read_text()) if report_file.exists() else {}
    last = json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[-1])
    return {
        "run_id": run_id,
        "algorithm": hp.algorithm,
        "variant": variant,
        "base_model": student.name,
        "selection_id": selection_id,
        "strategy": strategy,
        "n_pairs": len(chosen_pairs),
        "hyper": json.dumps(dataclasses.asdict(hp)),
        "seed": hp.seed,
        "checkpoint": str(run_dir / "final"),
        "metrics": str(run_dir / "metrics.jsonl"),
        "final_loss": last["loss"],
        "final_margin": last["margin"],
        "n_truncated": int(trunc.get("truncated", 0)),
        "n_dropped": int(trunc.get("dropped", 0)),
    }


def stage_train(ws: Workspace, cfg: StudyConfig, force: bool = False) -> StageResult:
    """Train the student on each configured selection, for each variant and seed; write ``runs``.

    Reference log-probs are shared across runs through ``<workspace>/cache/refcache``;
    a run whose ``final/`` exists is reused, a killed one resumes from its checkpoint.
    """
    tc = cfg.train

    def body() -> tuple[list[str], list[Path], str]:
        sel = ws.read_table("selections", required_by="train")
        pairs = ws.read_table("pairs", required_by="train").set_index("pair_id")
        traces = ws.read_table("traces", required_by="train").set_index("trace_id")
        problems = ws.read_table("problems", required_by="train").set_index("problem_id")
        zoo = ws.read_table("zoo", required_by="train").set_index("generator_id")
        if tc.student not in zoo.index:
            raise UserError(f"train.student {tc.student!r} is not in the zoo (have: {', '.join(zoo.index)})")
        student = zoo.loc[tc.student]
        hyper_sets = tc.hyper_sets()
        rows = []
        for name in tc.selections:
            strategies = [s for s in dict.fromkeys(sel["strategy"]) if select_mod.matches(s, name)]
            if not strategies:
                hint = " (set select.by_generator_pair: true)" if name == "gen" else ""
                raise UserError(
                    f"train.selections names {name!r}, but no such selection exists{hint} "
                    f"(have: {', '.join(sorted(sel['strategy'].unique()))})"
                )
            for strategy in strategies:
                ids = sel[sel["strategy"] == strategy]
                selection_id = ids["selection_id"].iloc[0]
                chosen_pairs = pairs.loc[ids["pair_id"]]
                for variant, vc in hyper_sets.items():
                    for seed in tc.seeds:
                        hp = dataclasses.replace(hyper_from_config(vc), seed=seed)
                        rows.append(
                            _one_run(
                                ws,
                                student,
                                variant,
                                hp,
                                selection_id,
                                strategy,
                                chosen_pairs,
                                traces,
                                problems,
                            )
                        )
        ws.write_table("runs", pd.DataFrame(rows))
        return ["runs"], [Path(r["checkpoint"]) for r in rows], f"({len(rows)} runs)"

    return run_stage(
        ws,
        "train",
        ["selections", "pairs", "traces", "zoo"],
        tc.model_dump(),
        code_version(dpo, trainer, losses, logprobs, batching, select_mod),
        body,
        force,
    )
