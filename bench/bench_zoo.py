"""Zoo training throughput against a plain ``transformers`` ``Trainer`` on the same model and data.

The same Llama (the arith-world zoo's shape: hidden 48, 2 layers), the same training
problems (the world's pre-training mix), the same batch size, learning rate and number
of steps, one torch thread each. The peer is ``Trainer`` with its default sampling and
with ``train_sampling_strategy="group_by_length"`` (its own answer to padding); the headline compares with the
faster of the two. Throughput counts real (non-padding) tokens per second, end to end
(tokenizing, batching, steps).

Usage: ``python bench/bench_zoo.py [--steps 300]``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TQDM_DISABLE", "1")
warnings.filterwarnings("ignore")

import torch  # noqa: E402

from prefdelta.worlds.arith import prompt_text, reference_trace  # noqa: E402
from prefdelta.zoo.config import WorldSet, ZooModelSpec  # noqa: E402
from prefdelta.zoo.models import (  # noqa: E402
    build_tokenizer,
    collate_lm,
    encode_examples,
    make_config,
    tokenizer_corpus,
    train_generator,
)


def native(spec: ZooModelSpec, tokenizer, problems, out: Path) -> tuple[float, int]:
    examples = encode_examples(
        tokenizer, [prompt_text(p.text) for p in problems], [reference_trace(p) for p in problems]
    )
    mean_len = sum(len(ids) for ids, _ in examples) / len(examples)
    start = time.perf_counter()
    train_generator(spec, tokenizer, problems, out)
    return time.perf_counter() - start, int(mean_len * spec.batch_size * spec.steps)


def hf_trainer(
    spec: ZooModelSpec, tokenizer, problems, out: Path, group_by_length: bool
) -> tuple[float, int]:
    from transformers import AutoModelForCausalLM, Trainer, TrainingArguments

    start = time.perf_counter()
    examples = encode_examples(
        tokenizer, [prompt_text(p.text) for p in problems], [reference_trace(p) for p in problems]
    )
    data = [{"input_ids": ids, "n_prompt": n} for ids, n in examples]
    seen = {"tokens": 0}

    def collate(batch: list[dict]) -> dict[str, torch.Tensor]:
        seen["tokens"] += sum(len(b["input_ids"]) for b in batch)
        return collate_lm([(b["input_ids"], b["n_prompt"]) for b in batch], tokenizer.pad_token_id)

    torch.manual_seed(spec.seed)
    model = AutoModelForCausalLM.from_config(make_config(spec, tokenizer))
    args = TrainingArguments(
        output_dir=str(out), per_device_train_batch_size=spec.batch_size, max_steps=spec.steps,
        learning_rate=spec.lr, warmup_steps=spec.warmup, lr_scheduler_type="cosine", weight_decay=0.01,
        adam_beta2=0.98, max_grad_norm=1.0, logging_strategy="no", save_strategy="no", report_to=[],
        use_cpu=True, dataloader_num_workers=0, remove_unused_columns=False,
        train_sampling_strategy="group_by_length" if group_by_length else "random",
        disable_tqdm=True, seed=spec.seed,
    )  # fmt: skip
    Trainer(model=model, args=args, train_dataset=data, data_collator=collate).train()
    model.save_pretrained(out / "final")
    return time.perf_counter() - start, seen["tokens"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=300)
    args = ap.parse_args()
    torch.set_num_threads(1)
    world = WorldSet(
        n=4000, seed=1, spec={"max_steps": 3, "high": 9}, mix={"word": 0.8, "code": 0.1, "stem": 0.1}
    )
    problems = world.problems()
    tokenizer = build_tokenizer(tokenizer_corpus(), 1000)
    spec = ZooModelSpec(id="bench", family="llama", hidden=48, layers=2, heads=4, steps=args.steps, batch_size=16,
                        lr=0.005, warmup=20)  # fmt: skip
    # import and build the model classes once before any timing, so that neither side pays
    # transformers' first-use imports (about 3 s) inside its clock
    from transformers import AutoModelForCausalLM, Trainer  # noqa: F401

    AutoModelForCausalLM.from_config(make_config(spec, tokenizer))
    with tempfile.TemporaryDirectory() as tmp:
        t_native, tok_native = native(spec, tokenizer, problems, Path(tmp) / "native")
        t_plain, tok_plain = hf_trainer(spec, tokenizer, problems, Path(tmp) / "hf", group_by_length=False)
        t_group, tok_group = hf_trainer(
            spec, tokenizer, problems, Path(tmp) / "hf-group", group_by_length=True
        )
    rates = {
        "native": tok_native / t_native,
        "trainer": tok_plain / t_plain,
        "trainer_group": tok_group / t_group,
    }
    print(f"{args.steps} steps of batch 16, 1 thread:")
    for name, t in (("native", t_native), ("trainer", t_plain), ("trainer_group", t_group)):
        print(f"  {name:14s} {t:6.1f} s  {rates[name]:9,.0f} tokens/s")
    peer = max(rates["trainer"], rates["trainer_group"])
    print(f"figure zoo_train_speedup_vs_hf_trainer {rates['native'] / peer:.2f} ratio")


if __name__ == "__main__":
    main()
