"""Native DPO/KTO against TRL 1.16 at its fastest: tokens/s, peak memory, and a 4-run sweep's wall time.

Two sizes. ``--size demo``: the demo zoo's shape (hidden 64, 2 layers; ~0.1M parameters,
where a step is mostly Python overhead), pairs shaped like GSM8K reasoning (prompts
60–150 tokens, completions 80–400). ``--size compute``: hidden 256, 4 layers (~4.2M
parameters), sequences of 200–700 tokens (prompts 60–150, completions 140–550), where a
step is mostly matrix products — the speed-up that remains there is the work skipped
(prefix sharing, no padding), not Python overhead. ``--device cuda``: hidden 768, 12
layers, ~85M parameters, bf16 autocast. Same pairs and batch size for both sides, fp32 on
CPU with 1 thread. TRL runs with ``precompute_ref_log_probs=True`` and no gradient
checkpointing.

Each run is a fresh process (imports done before the clock starts), timed end to end from
texts to a trained model (tokenizing, reference log-probs, training). Tokens/s counts each
pair's prompt + chosen + rejected tokens once per epoch, for both. Peak memory is the
process's peak resident set above its resident set once everything is imported (CPU;
on CUDA, ``torch.cuda.max_memory_allocated``).

The sweep (``--size demo``): 4 DPO runs over the same pairs (β ∈ {0.05, 0.1, 0.2, 0.5});
native runs share one reference cache (the first computes it), each TRL run precomputes
its own.

Usage: ``python bench/train_vs_trl.py [--size demo|compute] [--pairs 512] [--quick] [--device cuda]``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import random
import resource
import shutil
import subprocess
import sys
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


SIZES = {
    "demo": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=256),
    "compute": dict(hidden_size=256, num_hidden_layers=4, num_attention_heads=4, intermediate_size=1024),
    "cuda": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072),
}
COMPLETIONS = {"demo": (80, 400), "compute": (140, 550), "cuda": (80, 400)}


def make_model(folder: Path, size: str) -> object:
    """A random-init Llama with the arith tokenizer, saved with ``save_pretrained``."""
    from transformers import AutoModelForCausalLM, LlamaConfig

    from prefdelta.checkpoints import save_model
    from prefdelta.zoo.models import build_tokenizer, tokenizer_corpus

    tok = build_tokenizer(tokenizer_corpus(n=300), vocab_size=400)
    size = SIZES[size]
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
    return tok, sum(p.numel() for p in model.parameters())


def make_pairs(
    tok, n: int, seed: int = 0, completion: tuple[int, int] = (80, 400)
) -> tuple[list[str], list[str], list[str]]:
    """Texts whose token lengths follow GSM8K reasoning: prompts 60–150, completions in ``completion``."""
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
    chosen = [window(rng.randint(*completion) - 1).lstrip("\n") for _ in range(n)]
    rejected = [window(rng.randint(*completion) - 1).lstrip("\n") for _ in range(n)]
    return prompts, chosen, rejected


def n_tokens(tok, prompts, chosen, rejected) -> int:
    from prefdelta.train.logprobs import encode_pairs

    pairs, _, _ = encode_pairs(tok, prompts, chosen, rejected)
    return sum(len(p.prompt) + len(p.chosen) + len(p.rejected) for p in pairs)


def padded_tokens(tok, prompts, chosen, rejected, batch_size: int, max_tokens: int) -> tuple[int, int]:
    """Token positions each side runs through the model per epoch, padding included (same batches).

    TRL 1.16 (``padding_free`` is disabled in 1.16) pads each batch's prompt + chosen and
    prompt + rejected rows to the batch's longest; native runs each prompt once (prefix
    sharing) and each micro-batch's continuations padded to their longest. In a
    compute-bound regime the ratio of the two is the ceiling of the speed-up at equal matrix
    throughput.
    """
    from prefdelta.train.batching import micro_batches, plan_batches
    from prefdelta.train.logprobs import encode_pairs

    pairs, _, _ = encode_pairs(tok, prompts, chosen, rejected)
    trl = native = 0
    for batch in plan_batches(len(pairs), batch_size, 1, 0):
        widest = max(len(pairs[i].prompt) + max(len(pairs[i].chosen), len(pairs[i].rejected)) for i in batch)
        trl += 2 * len(batch) * widest
        lengths = [
            len(pairs[i].prompt) + 2 * max(len(pairs[i].chosen), len(pairs[i].rejected)) for i in batch
        ]
        for group in micro_batches(lengths, max_tokens):
            ps = [pairs[batch[k]] for k in group]
            native += len(ps) * (max(len(p.prompt) for p in ps) - 1)
            native += 2 * len(ps) * (1 + max(max(len(p.chosen), len(p.rejected)) for p in ps))
    return trl, native


def run_native(model_dir: Path, texts, algorithm: str, beta: float, args, out: Path, cache: Path) -> float:
    from prefdelta.train.config import TrainHyper
    from prefdelta.train.dpo import train_on_texts

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


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def worker(job: dict) -> dict:
    """One run in this (fresh) process: its seconds and peak memory above the imports."""
    args = argparse.Namespace(**job["args"])
    if args.device == "cpu":
        torch.set_num_threads(1)
    # imports warmed on both sides before the clock and the memory baseline
    import accelerate  # noqa: F401
    import datasets  # noqa: F401
    from transformers import LlamaForCausalLM  # noqa: F401
    from transformers.utils import logging as hf_logging
    from trl import DPOConfig, DPOTrainer, KTOConfig, KTOTrainer  # noqa: F401

    import prefdelta.train.dpo
    import prefdelta.train.trainer  # noqa: F401

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    texts = tuple(json.loads(Path(job["texts"]).read_text()))
    base = _rss_bytes()
    if args.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    model_dir, out = Path(job["model"]), Path(job["out"])
    if job["side"] == "native":
        seconds = run_native(model_dir, texts, job["algorithm"], job["beta"], args, out, Path(job["cache"]))
    else:
        seconds = run_trl(model_dir, texts, job["algorithm"], job["beta"], args, out)
    if args.device == "cuda":
        peak = torch.cuda.max_memory_allocated()
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base
    return {"seconds": seconds, "peak_bytes": peak}


def spawn(job: dict) -> dict:
    """:func:`worker` in a fresh interpreter (its own peak memory, nothing shared but files)."""
    proc = subprocess.run(
        [sys.executable, __file__, "--worker", json.dumps(job)], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise SystemExit(f"{job['side']} {job['algorithm']} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        print(json.dumps(worker(json.loads(sys.argv[2]))))
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=512)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--max-tokens", type=int, default=4096, help="native padded-token budget per forward")
    ap.add_argument("--quick", action="store_true", help="64 pairs (32 at --size compute), for make bench")
    ap.add_argument(
        "--size", choices=["demo", "compute"], default="demo", help="model and sequence size (see above)"
    )
    ap.add_argument("--no-sweep", action="store_true", help="skip the 4-run sweep")
    args = ap.parse_args()
    if args.quick:
        args.pairs = min(args.pairs, 64 if args.size == "demo" else 32)
    size = "cuda" if args.device == "cuda" else args.size
    if args.device == "cpu":
        torch.set_num_threads(1)
    elif not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device visible")
    root = Path(tempfile.mkdtemp(prefix="bench_train_"))
    try:
        model_dir = root / "model"
        tok, n_params = make_model(model_dir, size)
        texts = make_pairs(tok, args.pairs, completion=COMPLETIONS[size])
        (root / "texts.json").write_text(json.dumps(texts))
        tokens = n_tokens(tok, *texts)
        print(
            f"{size} size ({n_params / 1e6:.1f}M parameters): {args.pairs} pairs, {tokens} tokens "
            f"(prompt+chosen+rejected), batch {args.batch_size}, {args.device}"
        )

        def job(side: str, algorithm: str, beta: float, name: str, cache: str = "") -> dict:
            return {
                "side": side, "algorithm": algorithm, "beta": beta, "model": str(model_dir),
                "texts": str(root / "texts.json"), "out": str(root / name), "cache": str(root / cache),
                "args": vars(args),
            }  # fmt: skip

        suffix = "_compute" if size == "compute" else ""
        trl_padded, native_padded = padded_tokens(tok, *texts, args.batch_size, args.max_tokens)
        print(
            f"padded token positions per epoch: TRL {trl_padded:,} ({trl_padded / tokens:.2f}× the real "
            f"tokens), native {native_padded:,} ({native_padded / tokens:.2f}×); where matrix products "
            f"dominate, the speed-up cannot exceed about {trl_padded / native_padded:.2f}× (DPO)"
        )
        figures = {}
        for algorithm in ("dpo", "kto"):
            native = spawn(job("native", algorithm, 0.1, f"n-{algorithm}", f"rc-{algorithm}"))
            theirs = spawn(job("trl", algorithm, 0.1, f"t-{algorithm}"))
            figures[f"{algorithm}_speedup_vs_trl{suffix}"] = theirs["seconds"] / native["seconds"]
            figures[f"{algorithm}_peak_memory_vs_trl{suffix}"] = native["peak_bytes"] / theirs["peak_bytes"]
            print(
                f"{algorithm}: native {tokens / native['seconds']:,.0f} tok/s ({native['seconds']:.1f} s, "
                f"peak +{native['peak_bytes'] / 2**20:,.0f} MiB), TRL {tokens / theirs['seconds']:,.0f} tok/s "
                f"({theirs['seconds']:.1f} s, peak +{theirs['peak_bytes'] / 2**20:,.0f} MiB)"
            )
        if size != "compute" and not args.no_sweep:
            sweep_native = sum(
                spawn(job("native", "dpo", b, f"sn-{b}", "rc-sweep"))["seconds"] for b in BETAS
            )
            sweep_trl = sum(spawn(job("trl", "dpo", b, f"st-{b}"))["seconds"] for b in BETAS)
            print(
                f"sweep of {len(BETAS)} DPO runs: native {sweep_native:.1f} s (shared reference cache), "
                f"TRL {sweep_trl:.1f} s"
            )
            figures["sweep_speedup_vs_trl"] = sweep_trl / sweep_native
        for name, value in figures.items():
            print(f"figure {name} {value:.2f} x")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
