"""GPU benchmark (runs in under 8 minutes on one GPU): vLLM against the hf backend, then
native DPO/KTO against TRL in bf16.

1. Generation: the same prompts (GSM8K questions through the gsm8k chat template) and the
   same sampling, once through prefdelta's ``vllm`` backend and once through its ``hf``
   backend with memory-sized batches; completion tokens/s of each.
2. Training: ``bench/train_vs_trl.py --device cuda`` (an ~85M-parameter Llama, bf16
   autocast): native DPO/KTO tokens/s against TRL 1.16 at its fastest settings.

Nothing is downloaded: ``--model`` is a local folder (default: SmolLM2-135M-Instruct as
converted by ``make smollm2``). Usage::

    python bench/gpu/bench_gpu.py [--model models/SmolLM2-135M-Instruct] [--prompts 256]

Prints ``figure <name> <value> <unit>`` lines.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _requests(n: int, data_dir: Path):
    from prefdelta.generate.base import Request, Sampling
    from prefdelta.generate.prompts import load_template
    from prefdelta.sources.registry import load_source

    template = load_template("gsm8k")
    problems = load_source("gsm8k", "train", data_dir).head(n)
    sampling = Sampling(temperature=0.7, top_p=0.95, max_tokens=256, seed=0, n=1)
    return [
        Request(pid, messages=template.messages(prompt), sampling=sampling)
        for pid, prompt in zip(problems["problem_id"], problems["prompt"], strict=True)
    ]


def _tokens_per_s(backend, requests) -> float:
    start = time.perf_counter()
    results = backend.generate(requests)
    seconds = time.perf_counter() - start
    return sum(r.completion_tokens or 0 for r in results) / seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=ROOT / "models" / "SmolLM2-135M-Instruct")
    ap.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "datasets")
    ap.add_argument("--prompts", type=int, default=256)
    ap.add_argument("--pairs", type=int, default=256, help="pairs of the DPO/KTO comparison")
    args = ap.parse_args()
    import torch

    if not torch.cuda.is_available():
        sys.exit("bench_gpu.py needs a CUDA GPU")
    requests = _requests(args.prompts, args.data_dir)

    from prefdelta.generate.vllm import VLLMBackend

    vllm = VLLMBackend(str(args.model), gpu_memory_utilization=0.5)
    _tokens_per_s(vllm, requests[:8])  # warm-up: CUDA graphs, compilation
    vllm_tps = _tokens_per_s(vllm, requests)
    del vllm
    torch.cuda.empty_cache()

    from prefdelta.generate.hf import HFBackend

    hf = HFBackend(str(args.model), device="cuda", dtype="bfloat16")
    _tokens_per_s(hf, requests[:8])
    hf_tps = _tokens_per_s(hf, requests)
    del hf
    torch.cuda.empty_cache()
    print(f"vllm {vllm_tps:,.0f} tokens/s, hf backend {hf_tps:,.0f} tokens/s ({args.prompts} prompts)")
    print(f"figure vllm_generate_tokens_per_s {vllm_tps:.0f} tokens/s")
    print(f"figure vllm_vs_hf_generate {vllm_tps / hf_tps:.2f} x")

    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "train_vs_trl.py"),
            "--device",
            "cuda",
            "--pairs",
            str(args.pairs),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    for line in proc.stdout.splitlines():
        print(line.replace("figure ", "figure gpu_bf16_", 1) if line.startswith("figure ") else line)


if __name__ == "__main__":
    main()
