"""Worker start-up: a fork server that imported torch and transformers once vs spawned workers.

A study starts three pools of worker processes (zoo, train, eval; generate too with
``generate.workers``). A spawned worker is a fresh interpreter that imports torch and
``transformers`` before its first job (about 7 s on a 2-core CPU); a worker forked from
the server of :func:`prefdelta.parallel.context` has them already. Each arm runs in a fresh
interpreter (the fork server lives as long as the process that started it): four pools of
two workers, one after another like a study's stages, each job loading a zoo-shaped Llama
with ``from_pretrained`` (what every real job does first). The time counts from the first
pool's start to the last pool's end; the arms alternate over ``--rounds`` and the median
counts.

Usage: ``python bench/bench_workers.py [--rounds 3] [--pools 4]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def load_model(folder: str) -> int:
    """A job's first step: load a model from its folder; returns the parameter count."""
    import torch
    from transformers import AutoModelForCausalLM

    torch.set_num_threads(1)
    model = AutoModelForCausalLM.from_pretrained(folder)
    return sum(p.numel() for p in model.parameters())


def arm(start_method: str, pools: int, folder: str) -> float:
    """Seconds for ``pools`` pools of two jobs on two workers, in this fresh process."""
    import multiprocessing as mp

    from prefdelta import parallel

    if start_method == "spawn":
        parallel.context = lambda: mp.get_context("spawn")  # the start method before the fork server
    start = time.perf_counter()
    for _ in range(pools):
        counts = parallel.run_jobs(load_model, [folder, folder], workers=2, label="bench")
        assert counts[0] == counts[1] > 0
    return time.perf_counter() - start


def make_model(folder: Path) -> None:
    from transformers import AutoModelForCausalLM, LlamaConfig

    config = LlamaConfig(
        hidden_size=48, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4,
        intermediate_size=192, vocab_size=1000, max_position_embeddings=384,
    )  # fmt: skip
    AutoModelForCausalLM.from_config(config).save_pretrained(folder)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--pools", type=int, default=4)
    ap.add_argument("--arm", choices=["spawn", "forkserver"], help=argparse.SUPPRESS)
    ap.add_argument("--folder", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.arm:  # a child: one arm, its time as JSON on stdout
        print(json.dumps({"seconds": arm(args.arm, args.pools, args.folder)}))
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "model"
        make_model(folder)
        times: dict[str, list[float]] = {"spawn": [], "forkserver": []}
        for r in range(args.rounds):
            for name in ("spawn", "forkserver") if r % 2 == 0 else ("forkserver", "spawn"):
                child = ["--arm", name, "--pools", str(args.pools), "--folder", str(folder)]
                cmd = [sys.executable, __file__, *child]
                out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
                times[name].append(json.loads(out.strip().splitlines()[-1])["seconds"])
                print(f"round {r}: {name:10s} {times[name][-1]:6.2f} s for {args.pools} pools of 2 workers")
    spawn, fork = statistics.median(times["spawn"]), statistics.median(times["forkserver"])
    print(f"median: spawn {spawn:.2f} s, fork server {fork:.2f} s")
    print(f"figure worker_pools_speedup_vs_spawn {spawn / fork:.2f} ratio")


if __name__ == "__main__":
    main()
