"""The HTML report in a real headless Chromium: it renders, every image loads, the
screenshot is not blank, and the page makes no external request."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import ROOT

pytestmark = pytest.mark.integration

CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


def chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:  # `make test` installs Debian's chromium when it is missing
        pytest.fail(
            "chromium not found: run `make test` (it installs Debian's chromium) or apt-get install chromium"
        )
    return exe


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    """A tiny study with a ladder and a grid, three seeds, DPO and KTO: report.html."""
    from prefdelta.study.runner import run_study
    from prefdelta.study.spec import load_spec

    tmp = tmp_path_factory.mktemp("html")
    spec = tmp / "study.yaml"
    spec.write_text(
        f"extends: {ROOT / 'tests' / 'data' / 'tiny_study.yaml'}\n"
        "pairs: {within: [llama-a-early]}\n"
        "select:\n  basic: false\n"
        "  ladders: [{name: ladder, fixed: rejected, generator: llama-a-early}]\n"
        "  grids: [{name: grid, chosen: llama-a, rejected: gpt2-b, keys: [step_coherence, outcome],\n"
        "           fractions: [0.5], strategies: [top, random]}]\n"
        "train: {selections: [ladder, grid], seeds: [0, 1, 2]}\n"
    )
    from prefdelta.workspace import Workspace

    ws = Workspace(tmp / "ws")
    run_study(ws, load_spec(spec))
    return ws.reports_dir / "report.html"


def test_report_is_self_contained_and_holds_the_findings(report):
    text = report.read_text()
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", text), "an external request"
    assert "Findings" in text and "Provenance" in text and "git commit" in text
    assert "ladder" in text and "grid" in text
    tables = report.parent / "tables"
    assert {"cells.csv", "contrasts.csv", "verdicts.csv", "generator_table.csv"} <= {
        p.name for p in tables.iterdir()
    }


def test_cells_with_the_same_pairs_train_and_evaluate_once(report):
    """The grid's random 50% is the same draw beside both keys: trained once (the twin's
    weights are hard links to the source's files), evaluated once (equal samples)."""
    import pandas as pd

    from prefdelta.workspace import Workspace

    ws = Workspace(report.parent.parent)
    runs = ws.read_table("runs").set_index("run_id")
    evals = ws.read_table("evals")
    for variant, seed in [(v, s) for v in ("dpo", "kto") for s in (0, 1, 2)]:
        pair = [r for r in runs.index if r.startswith(f"{variant}-grid-random-") and f"-seed{seed}-" in r]
        assert len(pair) == 2 and pair[0].rsplit("-", 1)[1] == pair[1].rsplit("-", 1)[1]
        a, b = (ws.resolve(runs.loc[r, "checkpoint"]) / "model.safetensors" for r in pair)
        assert a.stat().st_ino == b.stat().st_ino  # one training run
        rows = [evals[evals["model_id"] == r].sort_values(["suite", "benchmark", "metric"]) for r in pair]
        assert len(rows[0]) > 0
        cols = ["suite", "benchmark", "metric", "value", "n", "ci_low", "ci_high"]
        pd.testing.assert_frame_equal(
            rows[0][cols].reset_index(drop=True), rows[1][cols].reset_index(drop=True)
        )
    top = [r for r in runs.index if r.startswith("dpo-grid-top-") and "-seed0-" in r]
    assert len({r.rsplit("-", 1)[1] for r in top}) == 2  # different pairs: two runs


def test_chromium_renders_every_image_and_the_page_is_not_blank(report, tmp_path):
    exe = chromium()
    dom = subprocess.run(
        [exe, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'a'}", "--virtual-time-budget=5000", "--dump-dom",
         report.as_uri()],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    m = re.search(r'data-images="(\d+)/(\d+)"', dom.stdout)
    assert m, dom.stderr[-2000:]
    loaded, total = int(m.group(1)), int(m.group(2))
    assert total >= 5 and loaded == total
    shot = tmp_path / "shot.png"
    subprocess.run(
        [exe, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'b'}", "--window-size=1280,2400",
         f"--screenshot={shot}", report.as_uri()],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    from PIL import Image

    img = Image.open(shot).convert("L")
    lo, hi = img.getextrema()
    assert img.size == (1280, 2400) and hi - lo > 100
    histogram = img.histogram()
    assert max(histogram) < 0.97 * sum(histogram)  # not one flat colour
