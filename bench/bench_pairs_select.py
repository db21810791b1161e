"""Benchmark: build pairs and selections for 100,000 traces.

Workload: 4 generators x 5,000 problems x 5 samples = 100,000 judged traces. Measured:
cross-generator pairs (one per generator pair and problem; every ordered pair with a
positive gap), the select stage's selections (top 30% by step-coherence delta, a random
control of the same size, all) plus a stratified top-30%; the other two strategies are
timed for information.

Peer, measured in the same run: the per-problem Python loop the vectorised matcher
replaced (the project's first ``cross_generator_pairs``), timed on a 10% subset (500
problems) and scaled linearly to 100,000 traces — it is linear in problems, so the scaled
figure is a fair (if anything generous) estimate of its full run.

Prints ``figure pairs_select_100k_seconds <value> s`` and the speed-up over the peer.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import pandas as pd

from prefdelta import pairs, select
from prefdelta.judge.dimensions import DIMENSIONS
from prefdelta.select.config import SelectConfig

GENERATORS = ("g-small", "g-medium", "g-large", "g-xl")
PROBLEMS = 5_000
SAMPLES = 5


def workload(problems: int, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Traces, one judgment per trace, generators; generator i is right with p = 0.2 + 0.2 i."""
    rng = np.random.default_rng(seed)
    n = len(GENERATORS) * problems * SAMPLES
    gi = np.repeat(np.arange(len(GENERATORS)), problems * SAMPLES)
    pi = np.tile(np.repeat(np.arange(problems), SAMPLES), len(GENERATORS))
    si = np.tile(np.arange(SAMPLES), len(GENERATORS) * problems)
    gen = np.asarray(GENERATORS, dtype=object)[gi]
    pid = np.char.add("p", np.char.zfill(pi.astype(str), 6)).astype(object)
    tid = gen + "|" + pid + "|" + si.astype(str).astype(object)
    traces = pd.DataFrame(
        {
            "trace_id": tid,
            "problem_id": pid,
            "generator_id": gen,
            # a few samples repeat a text: identical texts must never be paired
            "text": "answer " + rng.integers(0, 40, n).astype(str).astype(object),
        }
    )
    judgments = pd.DataFrame(
        {"trace_id": tid, "outcome": rng.random(n) < 0.2 + 0.2 * gi}
        | {d: rng.integers(1, 6, n).astype(float) for d in DIMENSIONS}
    )
    gens = pd.DataFrame(
        {
            "generator_id": list(GENERATORS),
            "family": ["llama", "llama", "qwen", "qwen"],
            "params": [1e8, 1e9, 7e9, 7e10],
            "capability": [0.2, 0.4, 0.6, 0.8],
        }
    )
    return traces, judgments, gens


def naive_cross_generator_pairs(
    traces: pd.DataFrame, scores: pd.DataFrame, generators: pd.DataFrame, per_problem: int = 1, seed: int = 0
) -> pd.DataFrame:
    """The replaced implementation: a Python loop over generator pairs x problems x samples."""
    gens = generators.set_index("generator_id")
    cap = gens["capability"].astype(float)
    ids: Sequence[str] = list(gens.index)
    combos = [(a, b) for a in ids for b in ids if a != b and cap[a] > cap[b]]
    rng = np.random.default_rng(seed)
    by_key = {k: g for k, g in traces.groupby(["problem_id", "generator_id"], sort=True)}
    rows = []
    for a, b in combos:
        for pid in sorted(traces["problem_id"].unique()):
            ta, tb = by_key.get((pid, a)), by_key.get((pid, b))
            if ta is None or tb is None:
                continue
            cand = [
                (i, j)
                for i in range(len(ta))
                for j in range(len(tb))
                if ta["text"].iat[i] != tb["text"].iat[j]
            ]
            for k in rng.permutation(len(cand))[:per_problem]:
                i, j = cand[k]
                rows.append(
                    {
                        "problem_id": pid,
                        "chosen_trace_id": ta["trace_id"].iat[i],
                        "rejected_trace_id": tb["trace_id"].iat[j],
                        "chosen_generator": a,
                        "rejected_generator": b,
                    }
                )
    return pairs.add_deltas(pd.DataFrame(rows), scores, gens.reset_index())


def build_and_select(traces: pd.DataFrame, judgments: pd.DataFrame, gens: pd.DataFrame) -> tuple[int, int]:
    scores = pairs.trace_scores(judgments)
    built = pairs.cross_generator_pairs(traces, scores, gens)
    sels = select.selections_for(built, SelectConfig(key="step_coherence", fraction=0.3, seed=0))
    strat = select.select_top(built, "step_coherence", 0.3, stratify=True)
    return len(built), len(sels) + len(strat)


def main() -> None:
    traces, judgments, gens = workload(PROBLEMS)
    assert len(traces) == 100_000
    build_and_select(*workload(50))  # warm-up: imports and first-call overheads
    t0 = time.perf_counter()
    n_pairs, n_sel = build_and_select(traces, judgments, gens)
    ours = time.perf_counter() - t0
    print(
        f"ours: {n_pairs} cross-generator pairs and {n_sel} selection rows from {len(traces)} traces in {ours:.2f} s"
    )

    scores = pairs.trace_scores(judgments)
    for name, fn in (
        ("within_generator", pairs.within_generator_pairs),
        ("correctness", pairs.correctness_pairs),
    ):
        t = time.perf_counter()
        n = len(fn(traces, scores, gens))
        print(f"info: {name} pairs: {n} in {time.perf_counter() - t:.2f} s")

    sub_problems = PROBLEMS // 10
    st, sj, sg = workload(sub_problems)
    t = time.perf_counter()
    naive = naive_cross_generator_pairs(st, pairs.trace_scores(sj), sg)
    select.selections_for(naive, SelectConfig(key="step_coherence", fraction=0.3, seed=0))
    peer_sub = time.perf_counter() - t
    peer = peer_sub * PROBLEMS / sub_problems
    print(
        f"peer (per-problem loop): {len(naive)} pairs from {len(st)} traces in {peer_sub:.2f} s, "
        f"scaled to 100,000 traces: {peer:.1f} s"
    )
    print(f"speed-up over the per-problem loop {peer / ours:.1f} x")
    print(f"figure pairs_select_100k_seconds {ours:.2f} s")


if __name__ == "__main__":
    main()
