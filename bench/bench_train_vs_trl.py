"""``make bench`` entry: bench/train_vs_trl.py at its --quick size (64 pairs).

Run ``python bench/train_vs_trl.py`` for the full 512-pair comparison.
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

if __name__ == "__main__":
    sys.argv = [sys.argv[0], "--quick", *sys.argv[1:]]
    runpy.run_path(str(Path(__file__).with_name("train_vs_trl.py")), run_name="__main__")
