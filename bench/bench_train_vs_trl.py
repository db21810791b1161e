"""``make bench`` entry: bench/train_vs_trl.py at its --quick size, demo-sized (64 pairs,
a 0.2M-parameter Llama) and compute-bound (32 pairs of 200-700 tokens, 4.3M parameters).

Run ``python bench/train_vs_trl.py [--size compute]`` for the full 512-pair comparison.
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

if __name__ == "__main__":
    script = str(Path(__file__).with_name("train_vs_trl.py"))
    program, extra = sys.argv[0], sys.argv[1:]
    for size in ("demo", "compute"):
        sys.argv = [program, "--quick", "--size", size, *extra]
        runpy.run_path(script, run_name="__main__")
