"""Preference training on pairs given as text (the entry point the train stage uses).

Tokenizes with the exact prompt/completion boundary (:func:`.logprobs.encode_pairs`) and
runs :func:`.trainer.train_preference` (DPO or KTO, as ``hp.algorithm`` says).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from prefdelta.train.config import TrainHyper
from prefdelta.train.logprobs import TruncationReport, encode_pairs
from prefdelta.train.trainer import train_preference


def train_on_texts(
    model_path: str | Path,
    prompts: Sequence[str],
    chosen: Sequence[str],
    rejected: Sequence[str],
    hp: TrainHyper,
    out_dir: Path,
    progress: Callable[[int, int], None] | None = None,
    ref_cache_root: Path | None = None,
) -> tuple[dict[str, float], TruncationReport]:
    """Encode the pairs, train, and return the last metrics and the truncation report
    (also written to ``out_dir/truncation.json`` by the main process)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_path))
    pairs, _, report = encode_pairs(tokenizer, prompts, chosen, rejected, max_length=hp.max_length)
    last = train_preference(
        model_path,
        pairs,
        hp,
        Path(out_dir),
        ref_cache_root=ref_cache_root,
        on_step=None if progress is None else (lambda s, t, _m: progress(s, t)),
    )
    if last.get("is_main_process", 1.0):
        record = {"truncated": len(report.truncated), "dropped": len(report.dropped)}
        if ref_cache_root is not None:
            record.update(on_policyness(model_path, pairs, ref_cache_root))
        (Path(out_dir) / "truncation.json").write_text(json.dumps(record))
    return last, report


def on_policyness(model_path: str | Path, pairs, ref_cache_root: Path) -> dict[str, float]:
    """The student's mean per-token log-likelihood of the chosen and of the rejected traces
    *before* training (its reference log-probs, already in the cache): how on-policy a
    selection is. Pairs far off-policy (very negative) are the ones likelihood displacement
    hits (Razin et al. 2024); a selection closer to the student's own outputs is easier."""
    from prefdelta.train.refcache import RefCache, model_key

    cache = RefCache(ref_cache_root, model_key(model_path))
    chosen = cache.get([(p.prompt, p.chosen) for p in pairs])
    rejected = cache.get([(p.prompt, p.rejected) for p in pairs])
    n_c = torch.tensor([max(len(p.chosen), 1) for p in pairs], dtype=torch.float32)
    n_r = torch.tensor([max(len(p.rejected), 1) for p in pairs], dtype=torch.float32)
    return {
        "logp_per_token_chosen": float((chosen / n_c).mean()),
        "logp_per_token_rejected": float((rejected / n_r).mean()),
    }
