"""Greedy evaluation: the compacting decoder (finished rows leave the batch) vs ``model.generate``.

What the eval stage does 2,000 times per model in the demo: greedy answers to arith word
problems from a zoo-shaped Llama (hidden 48, 2 layers), batches of 128 sorted by prompt
length, up to 64 new tokens. The model is trained briefly here (a random model never says
EOS, so no row would finish early and there would be nothing to compare). Both arms get
the same batches; the bench checks that every row's tokens are equal, then reports the
speed-up. One torch thread; the arms alternate over ``--rounds`` and the median counts.

Usage: ``python bench/bench_greedy.py [--steps 400] [--prompts 1000] [--rounds 3]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
warnings.filterwarnings("ignore")

import torch  # noqa: E402

from prefdelta.generate.hf import greedy_tokens  # noqa: E402
from prefdelta.worlds.arith import ArithSpec, make_problems, prompt_text  # noqa: E402
from prefdelta.zoo.config import ZooModelSpec  # noqa: E402
from prefdelta.zoo.models import build_tokenizer, tokenizer_corpus, train_generator  # noqa: E402


def with_generate(model, enc, max_new: int, eos: int, pad: int) -> list[list[int]]:
    out = model.generate(**enc, max_new_tokens=max_new, do_sample=False, eos_token_id=eos, pad_token_id=pad)
    rows = []
    for row in out[:, enc["input_ids"].shape[1] :].tolist():
        rows.append(row[: row.index(eos) + 1] if eos in row else row)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--steps", type=int, default=400, help="training steps of the model (varied answer lengths)"
    )
    ap.add_argument("--prompts", type=int, default=1000)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(1)
    from transformers import AutoModelForCausalLM

    tok = build_tokenizer(tokenizer_corpus(n=300), vocab_size=400)
    spec = ZooModelSpec(id="bench", family="llama", hidden=48, layers=2, heads=4, steps=args.steps, lr=0.005)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "m"
        train_generator(spec, tok, make_problems(ArithSpec(max_steps=3), 4000, seed=1), folder)
        model = AutoModelForCausalLM.from_pretrained(folder).eval()
    prompts = sorted(
        (prompt_text(p.text) for p in make_problems(ArithSpec(max_steps=3), args.prompts, seed=3)), key=len
    )
    tok.padding_side = "left"
    batches = [
        tok(prompts[i : i + args.batch_size], return_tensors="pt", padding=True)
        for i in range(0, len(prompts), args.batch_size)
    ]
    eos, pad = tok.eos_token_id, tok.pad_token_id
    times: dict[str, list[float]] = {"generate": [], "compacting": []}
    outputs: dict[str, list[list[int]]] = {}
    with torch.inference_mode():
        for _ in range(args.rounds):
            for arm in times:
                start = time.perf_counter()
                rows: list[list[int]] = []
                for enc in batches:
                    if arm == "generate":
                        rows += with_generate(model, enc, 64, eos, pad)
                    else:
                        rows += greedy_tokens(model, enc["input_ids"], enc["attention_mask"], 64, eos)
                times[arm].append(time.perf_counter() - start)
                outputs[arm] = rows
    if outputs["generate"] != outputs["compacting"]:
        raise SystemExit("the compacting decoder's tokens differ from generate's")
    lengths = [len(r) for r in outputs["generate"]]
    print(
        f"{len(prompts)} prompts, batches of {args.batch_size}: answers of {min(lengths)}–{max(lengths)} tokens "
        f"(mean {statistics.mean(lengths):.1f}), every row equal in both arms"
    )
    for arm, ts in times.items():
        print(f"{arm}: median {statistics.median(ts):.2f} s over {len(ts)} rounds")
    ratio = statistics.median(times["generate"]) / statistics.median(times["compacting"])
    print(f"figure greedy_speedup_vs_generate {ratio:.2f} ratio")


if __name__ == "__main__":
    main()
