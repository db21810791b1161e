"""Native DPO/KTO against TRL 1.16 at its fastest: tokens/s, and a 4-run sweep's wall time.

Same tiny Llama (the demo zoo's shape: hidden 64, 2 layers; ``--device cuda``: hidden 768,
12 layers, ~85M parameters, bf16 autocast), same pairs shaped like GSM8K reasoning
(prompts 60–150 tokens, completions 80–400, lengths varying), same batch size, fp32 on
CPU with 1 thread. TRL runs with ``precompute_ref_log_probs=True`` and no gradient
checkpointing. Each run is timed end to end from texts to a trained model (tokenizing,
reference log-probs, training). Tokens/s counts each pair's prompt + chosen + rejected
tokens once per epoch, for both.

The sweep: 4 DPO runs over the same pairs (β ∈ {0.05, 0.1, 0.2, 0.5}); native runs share
one reference cache (the first computes it), each TRL run precomputes its own.

Usage: ``python bench/train_vs_trl.py [--pairs 512] [--quick] [--device cuda]``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import random
import shutil
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TQDM_DISABLE", "1")
warnings.filterwarnings("ignore")

import torch  # noqa: E402

BETAS = (0.05, 0.1, 0.2, 0.5)


def make_model(folder: Path, device: str) -> object:
    """A random-init Llama with the arith tokenizer, saved with ``save_pretrained``."""
    from transformers import AutoModelForCausalLM, LlamaConfig

    from prefdelta.checkpoints import save_model
    from prefdelta.zoo.models import build_tokenizer, tokenizer_corpus

    tok = build_tokenizer(tokenizer_corpus(n=300), vocab_size=400)
    size = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=256)
    if device == "cuda":
        size = dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072)
    cfg = LlamaConfig(
        vocab_size=len(tok),
        num_key_value_heads=size["num_attention_heads"],
        max_position_embeddings=1024,
        tie_word_embeddings=True,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        **size,
    )
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(cfg)
    save_model(model, tok, folder)
    return tok


def make_pairs(tok, n: int, seed: int = 0) -> tuple[list[str], list[str], list[str]]:
    """Texts whose token lengths follow GSM8K reasoning: prompts 60–150, completions 80–400."""
    from prefdelta.worlds.arith import ArithSpec, make_problems, prompt_text, reference_trace

    problems = make_problems(ArithSpec(max_steps=4), 400, seed=seed)
    stream: list[int] = []
    for p in problems:
        stream += tok(prompt_text(p.text) + reference_trace(p) + "\n", add_special_tokens=False)["input_ids"]
    rng = random.Random(seed)

    def window(length: int) -> str:
        start = rng.randrange(0, len(stream) - length)
        return tok.decode(stream[start : start + length])

    prompts = [window(rng.randint(60, 150) - 2).rstrip("\n") + "\n" for _ in range(n)]
    chosen = [window(rng.randint(80, 400) - 1).lstrip("\n") for _ in range(n)]
    rejected = [window(rng.randint(80, 400) - 1).lstrip("\n") for _ in range(n)]
    return prompts, chosen, rejected


def n_tokens(tok, prompts, chosen, rejected) -> int:
    from prefdelta.train.logprobs import encode_pairs

    pairs, _, _ = encode_pairs(tok, prompts, chosen, rejected)
    return sum(len(p.prompt) + len(p.chosen) + len(p.rejected) for p in pairs)


def run_native(model_dir: Path, texts, algorithm: str, beta: float, args, out: Path, cache: Path) -> float:
    from prefdelta.train.dpo import train_on_texts
    from prefdelta.train.trainer import TrainHyper

    hp = TrainHyper(
        algorithm=algorithm,
        beta=beta,
        lr=1e-4,
        epochs=1,
        batch_size=args.batch_size,
        warmup_ratio=0.0,
        max_length=None,
        max_tokens_per_forward=args.max_tokens,
        mixed_precision="bf16" if args.device == "cuda" else "no",
        device="cpu" if args.device == "cpu" else "auto",
    )
    t0 = time.perf_counter()
    train_on_texts(model_dir, *texts, hp, out, ref_cache_root=cache)
    return time.perf_counter() - t0


def run_trl(model_dir: Path, texts, algorithm: str, beta: float, args, out: Path) -> float:
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer

    prompts, chosen, rejected = texts
    common = dict(
        output_dir=str(out),
        learning_rate=1e-4,
        num_train_epochs=1,
        beta=beta,
        precompute_ref_log_probs=True,
        gradient_checkpointing=False,
        use_cpu=args.device == "cpu",
        bf16=args.device == "cuda",
        report_to=[],
        save_strategy="no",
        logging_steps=10_000,
        max_length=None,
        dataloader_num_workers=0,
        disable_tqdm=True,
    )
    t0 = time.perf_counter()
    tok = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModelForCausalLM.from_pretrained(str(model_dir))
    if algorithm == "dpo":
        from trl import DPOConfig, DPOTrainer

        ds = Dataset.from_dict({"prompt": prompts, "chosen": chosen, "rejected": rejected})
        cfg = DPOConfig(per_device_train_batch_size=args.batch_size, **common)
        trainer = DPOTrainer(model=model, args=cfg, train_dataset=ds, processing_class=tok)
    else:
        from trl import KTOConfig, KTOTrainer

        n = len(prompts)
        ds = Dataset.from_dict(
            {"prompt": prompts * 2, "completion": chosen + rejected, "label": [True] * n + [False] * n}
        )
        cfg = KTOConfig(
            per_device_train_batch_size=2 * args.batch_size, train_sampling_strategy="sequential", **common
        )
        trainer = KTOTrainer(model=model, args=cfg, train_dataset=ds, processing_class=tok)
    with contextlib.redirect_stdout(io.StringIO()):  # the Trainer prints its final log dict
        trainer.train()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=512)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--max-tokens", type=int, default=4096, help="native padded-token budget per forward")
    ap.add_argument("--quick", action="store_true", help="64 pairs (for make bench, ~2-3 min on 2 cores)")
    args = ap.parse_args()
    if args.quick:
        args.pairs = min(args.pairs, 64)
    if args.device == "cpu":
        torch.set_num_threads(1)
    elif not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device visible")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    root = Path(tempfile.mkdtemp(prefix="bench_train_"))
    try:
        model_dir = root / "model"
        tok = make_model(model_dir, args.device)
        texts = make_pairs(tok, args.pairs)
        tokens = n_tokens(tok, *texts)
        print(
            f"{args.pairs} pairs, {tokens} tokens (prompt+chosen+rejected), batch {args.batch_size}, {args.device}"
        )
        speed = {}
        for algorithm in ("dpo", "kto"):
            t_native = run_native(
                model_dir, texts, algorithm, 0.1, args, root / f"n-{algorithm}", root / f"rc-{algorithm}"
            )
            t_trl = run_trl(model_dir, texts, algorithm, 0.1, args, root / f"t-{algorithm}")
            speed[algorithm] = t_trl / t_native
            print(
                f"{algorithm}: native {tokens / t_native:,.0f} tok/s ({t_native:.1f} s), "
                f"TRL {tokens / t_trl:,.0f} tok/s ({t_trl:.1f} s)"
            )
        sweep_native = sum(
            run_native(model_dir, texts, "dpo", b, args, root / f"sn-{b}", root / "rc-sweep") for b in BETAS
        )
        sweep_trl = sum(run_trl(model_dir, texts, "dpo", b, args, root / f"st-{b}") for b in BETAS)
        print(
            f"sweep of {len(BETAS)} DPO runs: native {sweep_native:.1f} s (shared reference cache), TRL {sweep_trl:.1f} s"
        )
        print(f"figure dpo_speedup_vs_trl {speed['dpo']:.2f} x")
        print(f"figure kto_speedup_vs_trl {speed['kto']:.2f} x")
        print(f"figure sweep_speedup_vs_trl {sweep_trl / sweep_native:.2f} x")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
