"""Stage: zoo — train every model of the ``zoo:`` section once and cache it in the workspace.

Each model folder carries the key it was trained with (its spec, the tokenizer, the
training set and this stage's code), so an unchanged model is never retrained, even
when the stage re-runs because another zoo entry changed. Writes the ``zoo`` table
(generator_id, family, params, path relative to the workspace, steps, losses, timing).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from prefdelta.hashing import stable_hash
from prefdelta.study.stage import Estimate, Stage, StageContext, StageOutput
from prefdelta.workspace import Workspace

if TYPE_CHECKING:
    from prefdelta.study.spec import StudyConfig

COLUMNS = ["generator_id", "family", "params", "path", "steps", "final_loss", "train_seconds", "spec", "key"]


def _marker_key(folder: Path) -> str | None:
    mark = folder / "prefdelta.json"
    if not mark.exists():
        return None
    try:
        return json.loads(mark.read_text()).get("key")
    except json.JSONDecodeError:
        return None


def _tokenizer(ws: Workspace, cfg: StudyConfig, code: str):
    from transformers import AutoTokenizer

    from prefdelta.zoo import models

    tok_dir = ws.models_dir / "_tokenizer"
    key = stable_hash(cfg.zoo.tokenizer_vocab, code)
    if _marker_key(tok_dir) == key:
        return AutoTokenizer.from_pretrained(str(tok_dir)), key
    tokenizer = models.build_tokenizer(models.tokenizer_corpus(), cfg.zoo.tokenizer_vocab)
    tokenizer.save_pretrained(str(tok_dir))
    (tok_dir / "prefdelta.json").write_text(json.dumps({"key": key}))
    return tokenizer, key


def model_keys(cfg: StudyConfig, tok_key: str) -> dict[str, str]:
    """Zoo model id → the key its folder must carry to be reused."""
    return {m.id: stable_hash(m.model_dump(), tok_key, cfg.zoo.train.model_dump()) for m in cfg.zoo.models}


def _train_one(job: dict) -> dict:
    """Train one zoo model (in a worker process when there are several: one torch thread
    either way, so the weights do not depend on the parallelism)."""
    from transformers import AutoTokenizer

    from prefdelta.zoo import models
    from prefdelta.zoo.config import WorldSet, ZooModelSpec

    spec = ZooModelSpec.model_validate(job["spec"])
    tokenizer = AutoTokenizer.from_pretrained(job["tokenizer"])
    train = WorldSet.model_validate(job["train"]).problems()
    start = time.perf_counter()
    stats = models.train_generator(
        spec,
        tokenizer,
        train,
        Path(job["out"]),
        snapshot_dirs={int(k): Path(v) for k, v in job["snapshots"].items()},
    )
    stats["train_seconds"] = time.perf_counter() - start
    for d in [*job["snapshots"].values(), job["out"]]:
        (Path(d) / "prefdelta.json").write_text(json.dumps({"key": job["key"], "stats": stats}))
    return stats


def body(ws: Workspace, cfg: StudyConfig, ctx: StageContext) -> StageOutput:
    rows: list[dict[str, object]] = []
    if cfg.zoo.models:
        _, tok_key = _tokenizer(ws, cfg, ctx.code)
        keys = model_keys(cfg, tok_key)
        jobs = []
        for spec in cfg.zoo.models:
            out = ws.models_dir / spec.id
            snaps = {str(step): str(ws.models_dir / gid) for gid, step in spec.snapshots.items()}
            if not all(_marker_key(Path(d)) == keys[spec.id] for d in [str(out), *snaps.values()]):
                jobs.append(
                    {
                        "spec": spec.model_dump(),
                        "tokenizer": str(ws.models_dir / "_tokenizer"),
                        "train": cfg.zoo.train.model_dump(),
                        "out": str(out),
                        "snapshots": snaps,
                        "key": keys[spec.id],
                    }
                )
        from prefdelta.parallel import run_jobs

        # one process per job (up to twice the cores): runs of unequal length time-share
        # the cores instead of one core idling at the end (3 runs on 2 cores: 2000 + 2000 +
        # 1200 steps take 2600 step-times, not 3200); single-threaded, so weights do not change
        run_jobs(_train_one, jobs, max(cfg.threads, min(len(jobs), 2 * cfg.threads)), "zoo: train")
        for spec in cfg.zoo.models:
            out = ws.models_dir / spec.id
            stats = json.loads((out / "prefdelta.json").read_text())["stats"]
            snaps = {gid: (ws.models_dir / gid, step) for gid, step in spec.snapshots.items()}
            for gid, path, steps in [
                (spec.id, out, spec.steps),
                *((g, d, st) for g, (d, st) in snaps.items()),
            ]:
                rows.append(
                    {
                        "generator_id": gid,
                        "family": spec.family,
                        "params": int(stats["params"]),
                        "path": ws.relative(path),
                        "steps": steps,
                        "final_loss": stats["final_loss"] if gid == spec.id else None,
                        "train_seconds": stats.get("train_seconds", float("nan")) * steps / spec.steps,
                        "spec": json.dumps(spec.model_dump()),
                        "key": stable_hash(keys[spec.id], gid),
                    }
                )
    ws.write_table("zoo", pd.DataFrame(rows, columns=COLUMNS))
    return StageOutput(["zoo"], [ws.resolve(str(r["path"])) for r in rows], f"({len(rows)} models)")


def estimate(ws: Workspace, cfg: StudyConfig) -> Estimate:
    steps = sum(m.steps for m in cfg.zoo.models)
    return Estimate(
        {"models to train": len(cfg.zoo.models), "optimizer steps": steps} if cfg.zoo.models else {}
    )


STAGE = Stage(
    name="zoo",
    inputs=(),
    outputs=("zoo",),
    sections=("zoo",),
    body=body,
    help="Train the zoo (tiny models of the arith world) once and cache it in the workspace.",
    workers=lambda cfg: cfg.threads if len(cfg.zoo.models) > 1 else 1,
    estimate=estimate,
)
