"""The HTML report: one self-contained file (plots embedded as data URIs, no external request).

It renders what :mod:`prefdelta.report.analysis` computed — verdicts first, then the
generator-level and sample-level experiments, the contrasts, the pairs and the judges,
the spec and the provenance (package versions, git commit, table hashes, hardware, wall
time per stage). A small inline script records, once the page has loaded, how many of
its images the browser decoded (``<body data-images="loaded/total">``), which the
browser test reads.
"""

from __future__ import annotations

import base64
import html
import importlib.metadata
import os
import platform
import subprocess
from pathlib import Path

import pandas as pd

STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;
color:#222;line-height:1.45}
h1{font-size:1.7em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.8em}
table{border-collapse:collapse;font-size:.85em;margin:.6em 0}
td,th{border:1px solid #ddd;padding:.25em .5em;text-align:right}th{background:#f5f5f5}
td:first-child,th:first-child{text-align:left}
.verdict-reproduced{color:#16631f;font-weight:600}.verdict-not{color:#a11;font-weight:600}
.verdict-inconclusive{color:#8a6100;font-weight:600}
img{max-width:100%;border:1px solid #eee;margin:.5em 0}
pre{background:#f7f7f7;padding:.8em;overflow:auto;font-size:.8em;max-height:30em}
.note{color:#555;font-size:.9em}
"""

SCRIPT = """
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.images);
  var ok = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
  document.body.setAttribute('data-images', ok + '/' + imgs.length);
});
"""


def image(path: Path | None, alt: str) -> str:
    if path is None or not Path(path).is_file():
        return f'<p class="note">({html.escape(alt)}: not measured in this study)</p>'
    data = base64.b64encode(Path(path).read_bytes()).decode()
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def table(df: pd.DataFrame | None, points: tuple[str, ...] = (), digits: int = 3) -> str:
    """A frame as an HTML table; columns whose name starts with one of ``points`` are shown ×100."""
    if df is None or df.empty:
        return '<p class="note">(empty)</p>'
    shown = df.copy()
    for c in shown.columns:
        if any(str(c).startswith(p) for p in points) and pd.api.types.is_numeric_dtype(shown[c]):
            shown[c] = 100 * shown[c]
    return shown.to_html(index=False, float_format=lambda v: f"{v:.{digits}g}" if abs(v) < 1e-3 else f"{v:.{digits}f}",
                         border=0, na_rep="–", escape=True)  # fmt: skip


def budget_html(figure: Path | None, budget: pd.DataFrame, contrasts: pd.DataFrame) -> str:
    """The dynamic-selection section: the curves, their table and the equal-budget contrasts."""
    return (
        '<p class="note">Each point is one strategy trained for a budget of pair-updates (pairs per epoch × '
        "epochs), seeds pooled; dynamic selection re-ranks its pool every round by delta × (1 − σ(margin)) "
        "(docs/training.md).</p>"
        + image(figure, "gain against pair-updates")
        + table(budget.drop(columns=["cell"]), ("gain_",))
        + "<p>Dynamic minus each static strategy at the same budget (paired):</p>"
        + table(contrasts, ("in", "out"))
    )


def verdict_html(verdicts: pd.DataFrame) -> str:
    if verdicts.empty:
        return '<p class="note">No reference finding could be tested with the cells this study trained.</p>'
    items = []
    for r in verdicts.itertuples():
        cls = "verdict-" + str(r.verdict).split()[0]
        items.append(
            f"<li><b>{html.escape(str(r.finding))}</b> ({html.escape(str(r.variant))}): "
            f'<span class="{cls}">{html.escape(str(r.verdict))}</span> — {html.escape(str(r.numbers))}</li>'
        )
    return "<ul>" + "".join(items) + "</ul>"


def provenance(ws_root: Path, tables: dict[str, str], stage_seconds: dict[str, float]) -> pd.DataFrame:
    """Package versions, git commit, hardware, table hashes and wall time per stage."""
    rows: list[tuple[str, str]] = []
    for pkg in ("prefdelta", "torch", "transformers", "accelerate", "peft", "trl", "pandas", "numpy"):
        try:
            rows.append((f"package {pkg}", importlib.metadata.version(pkg)))
        except importlib.metadata.PackageNotFoundError:
            continue
    repo = Path(__file__).resolve().parents[3]
    try:
        commit = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=10).stdout.strip()  # fmt: skip
        dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()  # fmt: skip
        rows.append(
            ("git commit", (commit or "(not a git checkout)") + (" (with local changes)" if dirty else ""))
        )
    except (OSError, subprocess.TimeoutExpired):
        rows.append(("git commit", "(git not available)"))
    import torch

    rows += [
        ("python", platform.python_version()),
        ("machine", f"{platform.platform()}; {os.cpu_count()} CPUs; torch threads {torch.get_num_threads()}"),
        ("accelerator", torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none (CPU)"),
    ]
    rows += [(f"table {t}", h) for t, h in tables.items()]
    rows += [(f"wall time {s}", f"{v:.1f} s") for s, v in stage_seconds.items()]
    return pd.DataFrame(rows, columns=["what", "value"])


def page(title: str, sections: list[tuple[str, str]]) -> str:
    body = "".join(f"<h2>{html.escape(h)}</h2>{content}" for h, content in sections)
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>{body}"
        f"<script>{SCRIPT}</script></body></html>"
    )
