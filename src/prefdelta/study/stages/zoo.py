"""Stage: zoo."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd

from prefdelta import zoo as zoo_mod
from prefdelta.config import StudyConfig
from prefdelta.hashing import stable_hash
from prefdelta.progress import bar
from prefdelta.study.stages.base import StageResult, problems_of, run_stage
from prefdelta.workspace import Workspace, code_version
from prefdelta.worlds import arith


def stage_zoo(ws: Workspace, cfg: StudyConfig, force: bool = False) -> StageResult:
    """Train every zoo generator (cached per model folder) and write the ``zoo`` table."""
    config = {"zoo": [z.model_dump() for z in cfg.zoo], "vocab": cfg.world.tokenizer_vocab, "threads": None}

    def body() -> tuple[list[str], list[Path], str]:
        problems = ws.read_table("problems", required_by="zoo")
        train = problems_of(problems, "zoo_train")
        tok_dir = ws.models_dir / "_tokenizer"
        tok_key = stable_hash(cfg.world.tokenizer_vocab, code_version(zoo_mod, arith))
        marker = tok_dir / "prefdelta.json"
        if marker.exists() and json.loads(marker.read_text()).get("key") == tok_key:
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(str(tok_dir))
        else:
            tokenizer = zoo_mod.build_tokenizer(zoo_mod.tokenizer_corpus(), cfg.world.tokenizer_vocab)
            tokenizer.save_pretrained(str(tok_dir))
            marker.write_text(json.dumps({"key": tok_key}))
        rows = []
        for spec in cfg.zoo:
            out = ws.models_dir / spec.id
            key = stable_hash(spec.model_dump(), tok_key, [p.problem_id for p in train[:5]], len(train))
            mark = out / "prefdelta.json"
            snaps = {gid: (ws.models_dir / gid, step) for gid, step in spec.snapshots.items()}
            fresh = all(
                (d / "prefdelta.json").exists()
                and json.loads((d / "prefdelta.json").read_text()).get("key") == key
                for d in [out, *(d for d, _ in snaps.values())]
            )
            if fresh:
                stats = json.loads(mark.read_text())["stats"]
            else:
                with bar(f"zoo: train {spec.id}", spec.steps) as advance:
                    start = time.perf_counter()
                    stats = zoo_mod.train_generator(
                        spec,
                        tokenizer,
                        train,
                        out,
                        progress=lambda s, t, loss: advance(1),
                        snapshot_dirs={step: d for d, step in snaps.values()},
                    )
                    stats["train_seconds"] = time.perf_counter() - start
                for d in [*(d for d, _ in snaps.values()), out]:
                    (d / "prefdelta.json").write_text(json.dumps({"key": key, "stats": stats}))
            for gid, path, steps in [
                (spec.id, out, spec.steps),
                *((g, d, st) for g, (d, st) in snaps.items()),
            ]:
                rows.append(
                    {
                        "generator_id": gid,
                        "family": spec.family,
                        "params": int(stats["params"]),
                        "path": str(path),
                        "steps": steps,
                        "final_loss": stats["final_loss"] if gid == spec.id else None,
                        "train_seconds": stats.get("train_seconds", float("nan")) * steps / spec.steps,
                        "spec": json.dumps(spec.model_dump()),
                        "key": stable_hash(key, gid),
                    }
                )
        ws.write_table("zoo", pd.DataFrame(rows))
        return ["zoo"], [Path(r["path"]) for r in rows], f"({len(rows)} generators)"

    return run_stage(ws, "zoo", ["problems"], config, code_version(zoo_mod), body, force)
