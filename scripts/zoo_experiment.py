"""Exploration: how capable do zoo models get for a given budget, in- and out-of-domain?"""

import json
import sys
import time
from pathlib import Path

import torch

from prefdelta.checkpoints import load_model
from prefdelta.generate.hf import generate_all
from prefdelta.judge.oracle import is_correct
from prefdelta.worlds.arith import ArithSpec, make_problems, prompt_text
from prefdelta.zoo.config import ZooModelSpec
from prefdelta.zoo.models import build_tokenizer, tokenizer_corpus, train_generator

torch.set_num_threads(int(sys.argv[2]) if len(sys.argv) > 2 else 1)
specs = json.loads(sys.argv[1])
tok = build_tokenizer(tokenizer_corpus())
train = make_problems(ArithSpec(), 20000, seed=1, prefix="train")
suites = {"id": ArithSpec(), "distract": ArithSpec(distractors=1)}
_unused = {
    "id": ArithSpec(),
    "alt": ArithSpec(templates="alt"),
    "mixed": ArithSpec(templates="mixed"),
    "distract": ArithSpec(distractors=1),
    "range": ArithSpec(low=20, high=40),
    "5step": ArithSpec(min_steps=5, max_steps=5),
}
for s in specs:
    spec = ZooModelSpec(**s)
    t = time.time()
    out = Path("/tmp/zoo") / spec.id
    stats = train_generator(spec, tok, train, out)
    tt = time.time() - t
    model, tk = load_model(out)
    res = {}
    for name, sspec in suites.items():
        ps = make_problems(sspec, 200, seed=99, prefix=name)
        outs = generate_all(model, tk, [prompt_text(p.text) for p in ps], max_new_tokens=160, batch_size=100)
        res[name] = sum(is_correct(p, o.text) for p, o in zip(ps, outs, strict=False)) / len(ps)
    print(
        json.dumps(
            {
                "model": spec.id,
                "params": stats["params"],
                "loss": round(stats["final_loss"], 4),
                "train_s": round(tt, 1),
                "eval_s": round(time.time() - t - tt, 1),
                **res,
            }
        ),
        flush=True,
    )
