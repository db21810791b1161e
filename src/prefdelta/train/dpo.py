"""Preference training on pairs given as text (the entry point the train stage uses).

Tokenizes with the exact prompt/completion boundary (:func:`.logprobs.encode_pairs`) and
runs :func:`.trainer.train_preference` (the loss ``hp.algorithm`` names).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch

from prefdelta.train.config import TrainHyper
from prefdelta.train.logprobs import TruncationReport, encode_pairs
from prefdelta.train.losses import get_loss
from prefdelta.train.metrics import StepCallback
from prefdelta.train.refcache import RefCache, model_key
from prefdelta.train.trainer import train_preference

STATUS = {"loss": "loss", "margin": "margin", "preference_accuracy": "acc"}


@contextlib.contextmanager
def step_progress(run_name: str) -> Iterator[StepCallback]:
    """A live bar of a run's steps with its loss, reward margin and preference accuracy;
    yields the ``on_step`` callback that feeds it."""
    from prefdelta.progress import format_status, status_bar

    with status_bar(f"train: {run_name}") as update:
        yield lambda step, total, metrics: update(step, total, format_status(metrics, STATUS))


def train_on_texts(
    model_path: str | Path,
    prompts: Sequence[str],
    chosen: Sequence[str],
    rejected: Sequence[str],
    hp: TrainHyper,
    out_dir: Path,
    on_step: StepCallback | None = None,
    ref_cache_root: Path | None = None,
    deltas: Sequence[float] | None = None,
) -> tuple[dict[str, float], TruncationReport]:
    """Encode the pairs, train, and return the last metrics and the truncation report
    (also written to ``out_dir/truncation.json`` by the main process). ``on_step(step,
    total, metrics)`` follows the run (:func:`step_progress` shows it). ``deltas`` (one per
    pair) rank the pool of a dynamic run (``hp.dynamic``)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_path))
    pairs, kept, report = encode_pairs(tokenizer, prompts, chosen, rejected, max_length=hp.max_length)
    last = train_preference(
        model_path,
        pairs,
        hp,
        Path(out_dir),
        ref_cache_root=ref_cache_root,
        on_step=on_step,
        deltas=None if deltas is None else [deltas[i] for i in kept],
    )
    if last.get("is_main_process", 1.0):
        record = {"truncated": len(report.truncated), "dropped": len(report.dropped)}
        if ref_cache_root is not None and get_loss(hp.algorithm).needs_reference:
            record.update(on_policyness(model_path, pairs, ref_cache_root))
        (Path(out_dir) / "truncation.json").write_text(json.dumps(record))
    return last, report


def on_policyness(model_path: str | Path, pairs, ref_cache_root: Path) -> dict[str, float]:
    """The student's mean per-token log-likelihood of the chosen and of the rejected traces
    *before* training (its reference log-probs, already in the cache): how on-policy a
    selection is. Pairs far off-policy (very negative) are the ones likelihood displacement
    hits (Razin et al. 2024); a selection closer to the student's own outputs is easier."""
    cache = RefCache(ref_cache_root, model_key(model_path))
    chosen = cache.get([(p.prompt, p.chosen) for p in pairs])
    rejected = cache.get([(p.prompt, p.rejected) for p in pairs])
    n_c = torch.tensor([max(len(p.chosen), 1) for p in pairs], dtype=torch.float32)
    n_r = torch.tensor([max(len(p.rejected), 1) for p in pairs], dtype=torch.float32)
    return {
        "logp_per_token_chosen": float((chosen / n_c).mean()),
        "logp_per_token_rejected": float((rejected / n_r).mean()),
    }
