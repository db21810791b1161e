"""The generator zoo: tiny causal LMs trained from scratch on the arith world.

Why: a preference study needs generators of *different capability*. On a CPU we get a
capability ladder by training tiny ``transformers`` models (Llama-, GPT-2- and
Qwen2-style configs) from random initialisation on correct arith traces, at several
sizes and training budgets. Each is saved with ``save_pretrained`` next to a tokenizer
built locally, and every later stage loads it back through ``AutoModelForCausalLM`` /
``AutoTokenizer`` from the folder — the same path a user's hub model takes.

Typical budgets on a 2-core CPU (1–2 torch threads): a ~0.2M-parameter Llama needs
~1,500 steps of batch 32 to solve most 2–4-step problems; a few hundred steps leave it
weak. Sizes: hidden 32–128, layers 1–4.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from prefdelta.checkpoints import save_model
from prefdelta.worlds.arith import ArithProblem, ArithSpec, make_problems, prompt_text, reference_trace
from prefdelta.zoo.config import ZooModelSpec

SPECIAL_TOKENS = {"pad_token": "<pad>", "bos_token": "<bos>", "eos_token": "<eos>"}


def build_tokenizer(texts: Sequence[str], vocab_size: int = 400):  # -> PreTrainedTokenizerFast
    """A byte-level BPE tokenizer with one token per digit, trained on ``texts``.

    Digits are split individually so that arithmetic is learnable by a tiny model;
    byte-level BPE makes ``decode(encode(x)) == x`` exact, newlines included.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS.values()),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="<bos> $A", pair="<bos> $A $B", special_tokens=[("<bos>", tok.token_to_id("<bos>"))]
    )
    return PreTrainedTokenizerFast(tokenizer_object=tok, padding_side="left", **SPECIAL_TOKENS)


def tokenizer_corpus(seed: int = 0, n: int = 3000) -> list[str]:
    """Prompts and traces of every template family and rendering, so no world word is unknown."""
    texts: list[str] = []
    kinds = [("word", "base"), ("word", "alt"), ("word", "mixed"), ("code", "base"), ("stem", "base")]
    for i, (rendering, fam) in enumerate(kinds):
        spec = ArithSpec(templates=fam, rendering=rendering, distractors=1, min_steps=1, max_steps=6, high=40)
        for p in make_problems(spec, n, seed=seed + i, prefix="tok"):
            texts.append(prompt_text(p.text) + reference_trace(p))
    return texts


def make_config(spec: ZooModelSpec, tokenizer, max_len: int = 384):  # -> PretrainedConfig
    """A ``transformers`` config of the requested family and size."""
    from transformers import GPT2Config, LlamaConfig, Qwen2Config

    inter = spec.intermediate or 4 * spec.hidden
    ids = dict(
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    if spec.family == "gpt2":
        return GPT2Config(
            n_embd=spec.hidden,
            n_layer=spec.layers,
            n_head=spec.heads,
            n_inner=inter,
            n_positions=max_len,
            resid_pdrop=0.0,
            embd_pdrop=0.0,
            attn_pdrop=0.0,
            **ids,
        )
    cls = LlamaConfig if spec.family == "llama" else Qwen2Config
    return cls(
        hidden_size=spec.hidden,
        num_hidden_layers=spec.layers,
        num_attention_heads=spec.heads,
        num_key_value_heads=spec.heads,
        intermediate_size=inter,
        max_position_embeddings=max_len,
        tie_word_embeddings=True,
        **ids,
    )


def encode_examples(
    tokenizer, prompts: Sequence[str], completions: Sequence[str]
) -> list[tuple[list[int], int]]:
    """Token ids of ``prompt + completion + eos`` and the prompt length, prompt tokens a prefix.

    Prompt and completion are tokenized separately and concatenated, so the boundary is
    exact (the arith prompt ends in a newline, where BPE never merges across).
    """
    out = []
    p_ids = tokenizer(list(prompts), add_special_tokens=True)["input_ids"]
    c_ids = tokenizer(list(completions), add_special_tokens=False)["input_ids"]
    for p, c in zip(p_ids, c_ids, strict=True):
        out.append((list(p) + list(c) + [tokenizer.eos_token_id], len(p)))
    return out


def collate_lm(batch: Sequence[tuple[list[int], int]], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded ids, attention mask and labels masked on prompt and padding."""
    width = max(len(ids) for ids, _ in batch)
    input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), width), -100, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for i, (ids, n_prompt) in enumerate(batch):
        input_ids[i, : len(ids)] = torch.tensor(ids)
        mask[i, : len(ids)] = 1
        labels[i, n_prompt : len(ids)] = torch.tensor(ids[n_prompt:])
    return {"input_ids": input_ids, "attention_mask": mask, "labels": labels}


def length_bucketed_batches(lengths: Sequence[int], batch_size: int, rng: random.Random) -> list[list[int]]:
    """Shuffled batches of indices with similar lengths, so little compute goes to padding.

    Indices are shuffled, cut into windows of 32 batches, sorted by length inside each
    window and split into batches; the batch order is shuffled again.
    """
    order = list(range(len(lengths)))
    rng.shuffle(order)
    window = batch_size * 32
    batches: list[list[int]] = []
    for start in range(0, len(order), window):
        chunk = sorted(order[start : start + window], key=lambda i: lengths[i])
        batches.extend(chunk[j : j + batch_size] for j in range(0, len(chunk), batch_size))
    rng.shuffle(batches)
    return batches


def train_generator(
    spec: ZooModelSpec,
    tokenizer,
    problems: Sequence[ArithProblem],
    out_dir: Path,
    progress: Callable[[int, int, float], None] | None = None,
    snapshot_dirs: dict[int, Path] | None = None,
) -> dict[str, float]:
    """Train one zoo model from random init on reference traces and save it to ``out_dir``.

    The folder is written to a temporary sibling and renamed, so a killed run leaves no
    half-saved model. ``snapshot_dirs`` maps a step to a folder where the model is also
    saved after that step. Returns training statistics (parameters, final loss).
    """
    from transformers import AutoModelForCausalLM

    torch.manual_seed(spec.seed)
    rng = random.Random(spec.seed)
    config = make_config(spec, tokenizer)
    model = AutoModelForCausalLM.from_config(config)
    n_params = sum(p.numel() for p in model.parameters())
    examples = encode_examples(
        tokenizer, [prompt_text(p.text) for p in problems], [reference_trace(p) for p in problems]
    )
    opt = torch.optim.AdamW(model.parameters(), lr=spec.lr, weight_decay=0.01, betas=(0.9, 0.98))

    def lr_at(step: int) -> float:
        if step < spec.warmup:
            return (step + 1) / spec.warmup
        progress_ = (step - spec.warmup) / max(1, spec.steps - spec.warmup)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress_))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    model.train()
    loss_value = float("nan")
    batches: list[list[int]] = []
    for step in range(spec.steps):
        if not batches:
            batches = length_bucketed_batches([len(ids) for ids, _ in examples], spec.batch_size, rng)
        batch = collate_lm([examples[i] for i in batches.pop()], tokenizer.pad_token_id)
        loss = model(**batch, use_cache=False).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        loss_value = float(loss.detach())
        if snapshot_dirs and step + 1 in snapshot_dirs:
            save_model(model, tokenizer, snapshot_dirs[step + 1])
        if progress is not None:
            progress(step + 1, spec.steps, loss_value)
    model.eval()
    save_model(model, tokenizer, out_dir)
    return {"params": float(n_params), "final_loss": loss_value}
