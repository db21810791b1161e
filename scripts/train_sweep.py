"""Sweep of preference-training hyper-parameters (any registered loss: dpo, kto, simpo, orpo, …) in the arith world.

Runs on a workspace where `prefdelta demo` (or any arith study) has finished the
`select` stage. Every configuration trains the study's student on one selection and is
scored by greedy accuracy on a *validation* set of fresh in-domain problems (seed 13,
never used by the study's suites), so the defaults are not tuned on the reported suite.

    python scripts/train_sweep.py -w workspace --grid '{"algorithm": ["dpo"], "beta": [0.1, 0.5],
        "lr": [1e-4], "nll_weight": [0, 1], "seed": [0, 1, 2]}' --out sweep.jsonl

One JSON line per run (appended; runs already in ``--out`` are skipped, so a killed sweep
resumes). ``--summary`` prints the mean over seeds with a paired-bootstrap 95% interval of
the gain over the untrained student.
"""

from __future__ import annotations

import argparse
import itertools
import json
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from prefdelta.checkpoints import load_model
from prefdelta.evaluate.stats import paired_bootstrap_ci
from prefdelta.generate.hf import generate_all
from prefdelta.judge.outcome import grade_arith
from prefdelta.train.config import TrainHyper
from prefdelta.train.dpo import train_on_texts
from prefdelta.workspace import Workspace
from prefdelta.worlds.arith import ArithSpec, make_problems, prompt_text

VAL_SEED = 13
HYPER_FIELDS = set(TrainHyper.model_fields)


def _pairs_of(ws: Workspace) -> Callable[[str], tuple[list[str], list[str], list[str]]]:
    """Texts of a selection's pairs, by strategy (the tables are read once)."""
    sel = ws.read_table("selections")
    pairs = ws.read_table("pairs").set_index("pair_id")
    traces = ws.read_table("traces").set_index("trace_id")
    problems = ws.read_table("problems").set_index("problem_id")

    def texts(strategy: str) -> tuple[list[str], list[str], list[str]]:
        chosen = pairs.loc[sel.loc[sel["strategy"] == strategy, "pair_id"]]
        return (
            problems.loc[chosen["problem_id"], "prompt"].tolist(),
            traces.loc[chosen["chosen_trace_id"], "text"].tolist(),
            traces.loc[chosen["rejected_trace_id"], "text"].tolist(),
        )

    return texts


def _accuracy(path: str | Path, problems) -> list[bool]:
    model, tokenizer = load_model(path)
    outs = generate_all(
        model, tokenizer, [prompt_text(p.text) for p in problems], max_new_tokens=128, batch_size=250
    )
    return [grade_arith(o.text, p.answer).correct for p, o in zip(problems, outs, strict=True)]


def run(ws_dir: Path, grid: dict[str, list], out: Path, student: str, n_val: int) -> None:
    ws = Workspace(ws_dir)
    zoo = ws.read_table("zoo").set_index("generator_id")
    student_path = ws.resolve(zoo.loc[student, "path"])
    val = make_problems(ArithSpec(), n_val, seed=VAL_SEED, prefix="val")
    done = set()
    if out.exists():
        done = {json.loads(line)["key"] for line in out.read_text().splitlines() if line.strip()}
    if "base" not in done:
        base = _accuracy(student_path, val)
        with out.open("a") as f:
            f.write(json.dumps({"key": "base", "correct": base, "acc": float(np.mean(base))}) + "\n")
    selections = grid.pop("selection", ["all"])
    names = list(grid)
    texts_of = _pairs_of(ws)
    for strategy in selections:
        texts = texts_of(strategy)
        for values in itertools.product(*grid.values()):
            cfg = dict(zip(names, values, strict=True))
            key = json.dumps({"selection": strategy, **cfg}, sort_keys=True)
            if key in done:
                continue
            hp = TrainHyper(**{k: v for k, v in cfg.items() if k in HYPER_FIELDS})
            tmp = Path(tempfile.mkdtemp(prefix="sweep-"))
            t0 = time.time()
            try:
                _, _ = train_on_texts(student_path, *texts, hp, tmp, ref_cache_root=ws.cache_dir / "refcache")
                lines = (tmp / "metrics.jsonl").read_text().splitlines()
                first, last = json.loads(lines[0]), json.loads(lines[-1])
                correct = _accuracy(tmp / "final", val)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
            row = {
                "key": key,
                "selection": strategy,
                **cfg,
                "acc": float(np.mean(correct)),
                "correct": correct,
                "logp_chosen_first": first.get("logp_chosen"),
                "logp_chosen_last": last.get("logp_chosen"),
                "logp_rejected_last": last.get("logp_rejected"),
                "pref_acc_last": last.get("preference_accuracy"),
                "seconds": round(time.time() - t0, 1),
            }
            with out.open("a") as f:
                f.write(json.dumps(row) + "\n")
            print(json.dumps({k: v for k, v in row.items() if k != "correct"}), flush=True)


def summary(out: Path, boots: int = 2000) -> pd.DataFrame:
    """Mean gain over seeds with a paired bootstrap over validation problems (seeds pooled,
    as in the study report)."""
    rows = [json.loads(line) for line in out.read_text().splitlines() if line.strip()]
    base = np.array(next(r for r in rows if r["key"] == "base")["correct"], dtype=float)
    runs = pd.DataFrame([r for r in rows if r["key"] != "base"])
    defaults = TrainHyper()
    for name in HYPER_FIELDS & set(runs.columns):
        runs[name] = runs[name].fillna(getattr(defaults, name))
    group = [
        c
        for c in runs.columns
        if c not in {"key", "seed", "acc", "correct", "seconds"} and not c.startswith(("logp", "pref"))
    ]
    table = []
    for cfg, g in runs.groupby(group, dropna=False):
        runs_correct = np.stack([np.array(c, dtype=float) for c in g["correct"]])  # seeds x problems
        gain, lo, hi = paired_bootstrap_ci(base, runs_correct.mean(axis=0), n_boot=boots)
        table.append(
            {
                **dict(zip(group, cfg if isinstance(cfg, tuple) else (cfg,), strict=True)),
                "seeds": len(g),
                "gain_pts": round(100 * gain, 1),
                "ci_low": round(100 * lo, 1),
                "ci_high": round(100 * hi, 1),
                "seed_gains": [round(100 * (c - base).mean(), 1) for c in runs_correct],
                "logp_chosen_last": round(g["logp_chosen_last"].mean(), 2),
            }
        )
    return pd.DataFrame(table).sort_values("gain_pts", ascending=False)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-w", "--workspace", type=Path, default=Path("workspace"))
    ap.add_argument(
        "--grid", default="{}", help="JSON: field -> list of values (TrainHyper fields, 'selection')"
    )
    ap.add_argument("--out", type=Path, default=Path("sweep.jsonl"))
    ap.add_argument("--student", default="llama-h64-s1100")
    ap.add_argument("--n-val", type=int, default=500)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--summary", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.summary:
        with pd.option_context("display.width", 200, "display.max_columns", 30):
            print(summary(args.out).to_string(index=False))
        return
    run(args.workspace, json.loads(args.grid), args.out, args.student, args.n_val)


if __name__ == "__main__":
    main()
