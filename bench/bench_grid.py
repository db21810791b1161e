"""The sample-level grid as the study trains it, against the same grid as independent runs.

The study (template ``sample-grid``, one seed, DPO): every cell of the grid inside the
widest generator pair — 7 keys × 3 fractions × top / random / bottom, plus all pairs —
trained by the train stage: the student's reference log-probs computed once for the
whole grid and shared by every run, two runs at a time. The peer: the same runs, same
texts, same hyper-parameters and the same two workers, each run computing its own
reference log-probs as an independent run (a script that loops over a trainer) would.
The workspace (zoo, traces, pairs, selections) is built first and not timed.

Usage: ``python bench/bench_grid.py [--workspace DIR] [--cells N]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TQDM_DISABLE", "1")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workspace", type=Path, default=None, help="reuse this workspace (built if empty)")
    ap.add_argument("--cells", type=int, default=0, help="only the first N cells (0: the whole grid)")
    args = ap.parse_args()
    import torch

    from prefdelta.parallel import run_jobs
    from prefdelta.study.runner import run_study
    from prefdelta.study.spec import load_spec
    from prefdelta.study.stages import STAGES
    from prefdelta.train.stage import plan_jobs, prewarm_reference, resolve_student, train_job
    from prefdelta.workspace import Workspace

    torch.set_num_threads(2)
    root = args.workspace or Path(tempfile.mkdtemp(prefix="bench-grid-"))
    ws = Workspace(root)
    cfg = load_spec(template="sample-grid", overrides=["train.seeds=[0]", "train.variants={}"])
    run_study(ws, cfg, stages=STAGES[:6])  # problems … select: not timed
    student = resolve_student(ws, cfg)
    workers = cfg.train.workers

    def fresh_jobs(tag: str) -> list[dict]:
        shutil.rmtree(ws.runs_dir, ignore_errors=True)
        shutil.rmtree(ws.cache_dir / "refcache", ignore_errors=True)
        _, jobs = plan_jobs(ws, cfg, student, f"bench-{tag}")
        return jobs[: args.cells] if args.cells else jobs

    jobs = fresh_jobs("shared")
    start = time.perf_counter()
    prewarm_reference(student[1], jobs)
    run_jobs(train_job, jobs, workers, "grid, shared reference")
    shared = time.perf_counter() - start

    jobs = fresh_jobs("independent")
    for i, job in enumerate(jobs):  # every run its own reference cache: nothing shared
        job["ref_cache"] = str(ws.cache_dir / f"independent-{i}")
    start = time.perf_counter()
    run_jobs(train_job, jobs, workers, "grid, independent runs")
    independent = time.perf_counter() - start
    print(f"{len(jobs)} runs of the sample-level grid on {workers} workers")
    print(f"  shared reference cache (the study): {shared:7.1f} s")
    print(f"  independent runs:                   {independent:7.1f} s")
    print(f"figure grid_speedup_vs_independent_runs {independent / shared:.2f} ratio")
    if args.workspace is None:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
