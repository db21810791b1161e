"""CPU cost of the table layer: write N ``eval_samples`` shards one after another (as the
eval stage does, each with its table's declared schema and its siblings checked for
drift), then read the table back.

    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_tables.py 500

CPU time, not wall time: the fsync of every write dominates wall time and varies with
the disk and the machine's load.
"""

from __future__ import annotations

import sys
import tempfile
import time

import pandas as pd

from prefdelta.workspace import Workspace


def main(n: int) -> None:
    rows = pd.DataFrame(
        {
            "model_id": ["m"] * 50,
            "checkpoint_hash": "h",
            "suite": "s",
            "benchmark": "b",
            "problem_id": [f"p{i}" for i in range(50)],
            "sample": 0,
            "text": "x" * 200,
            "finish_reason": "stop",
            "error": pd.Series([None] * 50, dtype="string"),
            "predicted": pd.Series(["1"] * 50, dtype="string"),
            "correct": True,
        }
    )
    with tempfile.TemporaryDirectory() as folder:
        ws = Workspace(folder)
        start = time.process_time()
        for i in range(n):
            ws.write_shard("eval_samples", f"s{i:05d}", rows)
        write = time.process_time() - start
        start = time.process_time()
        df = ws.read_table("eval_samples")
        read = time.process_time() - start
    print(
        f"{n} shards: {1000 * write / n:.2f} ms CPU per shard write; read {read:.2f} s CPU ({len(df)} rows)"
    )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 500)
