"""hf backend: batched, left-padded, KV-cached generation vs one prompt at a time.

On the arith zoo's kind of model (a random-init Llama of the demo's size, hidden 64, 2
layers, with the zoo tokenizer) and arith prompts: traces/s of ``HFBackend`` with
batches of 64 and with batches sized to memory (``batch_size=None``), against the
same backend with ``batch_size=1``. Random weights rarely emit EOS, so every trace runs
to ``max_tokens`` in both arms and the work is equal.

    .venv/bin/python bench/bench_generate_hf.py [--prompts 64] [--max-tokens 32]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from prefdelta.checkpoints import save_model
from prefdelta.generate.base import Request, Sampling
from prefdelta.generate.hf import HFBackend
from prefdelta.worlds.arith import ArithSpec, make_problems, prompt_text
from prefdelta.zoo.config import ZooModelSpec
from prefdelta.zoo.models import build_tokenizer, make_config, tokenizer_corpus


def timed(backend: HFBackend, requests: list[Request]) -> tuple[float, int]:
    start = time.perf_counter()
    results = backend.generate(requests)
    elapsed = time.perf_counter() - start
    return elapsed, sum(r.completion_tokens for r in results)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    from transformers import AutoModelForCausalLM

    tokenizer = build_tokenizer(tokenizer_corpus(n=300), vocab_size=400)
    spec = ZooModelSpec(id="bench", family="llama", hidden=64, layers=2, heads=4)
    model = AutoModelForCausalLM.from_config(make_config(spec, tokenizer))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "bench-llama"
        save_model(model, tokenizer, folder)
        problems = make_problems(ArithSpec(), args.prompts, seed=7, prefix="bench")
        sampling = Sampling(temperature=0.8, max_tokens=args.max_tokens, seed=0)
        requests = [Request(p.problem_id, prompt=prompt_text(p.text), sampling=sampling) for p in problems]
        arms = {
            "one at a time": HFBackend(folder, device="cpu", batch_size=1),
            "batched (64)": HFBackend(folder, device="cpu", batch_size=64),
            "batched (memory-sized)": HFBackend(folder, device="cpu"),
        }
        timed(arms["batched (64)"], requests[:8])  # warm-up
        rates = {}
        for name, backend in arms.items():
            elapsed, tokens = timed(backend, requests)
            rates[name] = len(requests) / elapsed
            print(
                f"{name:24s} {rates[name]:8.1f} traces/s  {tokens / elapsed:9.0f} tokens/s  ({elapsed:.2f} s)"
            )
    print(
        f"figure hf_memory_sized_vs_one_at_a_time {rates['batched (memory-sized)'] / rates['one at a time']:.1f} ratio"
    )
    print(f"figure hf_batched_vs_one_at_a_time {rates['batched (64)'] / rates['one at a time']:.1f} ratio")


if __name__ == "__main__":
    main()
