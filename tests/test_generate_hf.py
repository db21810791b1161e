"""The hf backend on a tiny model saved to a folder: batching, n, stop strings, chat."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from prefdelta.errors import UserError
from prefdelta.generate import hf
from prefdelta.generate.base import Backend, Request, Sampling
from prefdelta.generate.hf import HFBackend, batch_size_for_memory, bytes_per_sequence, pick_dtype

CHAT_TEMPLATE = (
    "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant: {% endif %}"
)


def test_backend_results_match_requests(tiny_model_dir: Path) -> None:
    backend = HFBackend(tiny_model_dir, device="cpu", batch_size=4)
    assert isinstance(backend, Backend)
    assert backend.dtype == torch.float32
    requests = [
        Request(
            f"r{i}", prompt=f"Ann has {i} apples.\n", sampling=Sampling(temperature=0.9, max_tokens=12, n=2)
        )
        for i in range(5)
    ] + [Request("g", prompt="Ben has 3 pens.\n", sampling=Sampling(max_tokens=12))]
    seen: list[tuple[str, int]] = []
    results = backend.generate(requests, on_result=lambda r: seen.append((r.request_id, r.index)))
    keys = [(r.request_id, r.index) for r in results]
    assert keys == [(f"r{i}", j) for i in range(5) for j in range(2)] + [("g", 0)]
    assert sorted(seen) == sorted(keys)
    for r in results:
        assert r.error is None and r.finish_reason in ("stop", "length")
        assert 0 < r.completion_tokens <= 12 and r.prompt_tokens > 0
    # the same requests and seeds give the same texts
    again = backend.generate(requests)
    assert [r.text for r in again] == [r.text for r in results]


def test_stop_strings_cut_and_end_early(tiny_model_dir: Path) -> None:
    backend = HFBackend(tiny_model_dir, device="cpu")
    sampling = Sampling(temperature=1.0, max_tokens=30, seed=3)
    free = backend.generate([Request("a", prompt="Ann has 7 apples.\n", sampling=sampling)])[0]
    assert len(free.text) > 12
    stop = next(free.text[i : i + 2] for i in range(3, len(free.text)) if free.text[i : i + 2].isalpha())
    assert free.text.find(stop) >= 3
    with_stop = Sampling(temperature=1.0, max_tokens=30, seed=3, stop=("never-there", stop))
    cut = backend.generate([Request("a", prompt="Ann has 7 apples.\n", sampling=with_stop)])[0]
    assert cut.finish_reason == "stop"
    assert cut.text == free.text[: free.text.find(stop)]
    assert cut.completion_tokens < free.completion_tokens


def test_chat_needs_template(tiny_model_dir: Path, tmp_path: Path) -> None:
    msg = Request(
        "c", messages=({"role": "user", "content": "Ann has 7 apples."},), sampling=Sampling(max_tokens=8)
    )
    [r] = HFBackend(tiny_model_dir, device="cpu").generate([msg])
    assert r.finish_reason == "error" and "chat template" in r.error
    copy = tmp_path / "with-chat"
    shutil.copytree(tiny_model_dir, copy)
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(copy)
    tok.chat_template = CHAT_TEMPLATE
    tok.save_pretrained(copy)
    backend = HFBackend(copy, device="cpu")
    assert backend.render(msg) == "user: Ann has 7 apples.\nassistant: "
    [r] = backend.generate([msg])
    assert r.error is None and r.completion_tokens > 0
    assert r.prompt_text == "user: Ann has 7 apples.\nassistant: "  # what the model was fed
    [p] = backend.generate([Request("p", prompt="Ann has 7 apples.\n", sampling=Sampling(max_tokens=4))])
    assert p.prompt_text == "Ann has 7 apples.\n"


def test_generate_all_still_works(tiny_model_dir: Path) -> None:
    from prefdelta.checkpoints import load_model

    model, tok = load_model(tiny_model_dir)
    outs = hf.generate_all(
        model, tok, ["Ann has 1 pen.\n", "Ben\n", "Cara has 2 cards.\n"], batch_size=2, max_new_tokens=5
    )
    assert len(outs) == 3 and all(o.completion_tokens <= 5 for o in outs)
    wrapped = HFBackend(model=model, tokenizer=tok)
    assert wrapped.device == "cpu"


def test_memory_sizing_and_errors(tiny_model_dir: Path, tmp_path: Path) -> None:
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(tiny_model_dir)
    per = bytes_per_sequence(config, 100, torch.float32)
    # 2 (K,V) x 1 layer x 2 heads x 16 dims x 100 tokens x 4 bytes + vocab x 4
    assert per == 2 * 1 * 2 * 16 * 100 * 4 + config.vocab_size * 4
    assert batch_size_for_memory(config, 100, torch.float32, per * 20) == 10
    assert batch_size_for_memory(config, 100, torch.float32, 1) == 1
    assert batch_size_for_memory(config, 100, torch.float32, per * 10**6, cap=64) == 64
    assert pick_dtype("auto", "cpu") == torch.float32
    with pytest.raises(UserError, match="dtype"):
        pick_dtype("int3", "cpu")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match=r"no config\.json"):
        HFBackend(tmp_path / "empty")
    with pytest.raises(UserError, match="could not load model 'no-such-org/no-such-model'"):
        HFBackend("no-such-org/no-such-model")  # offline in tests: a clear error, not a traceback


def test_out_of_memory_halves_the_batch(tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    backend = HFBackend(tiny_model_dir, device="cpu", batch_size=8)
    real = hf.generate_batch
    sizes: list[int] = []

    def limited(model, tokenizer, prompts, **kw):
        sizes.append(len(prompts))
        if len(prompts) > 3:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(model, tokenizer, prompts, **kw)

    monkeypatch.setattr(hf, "generate_batch", limited)
    requests = [
        Request(f"r{i}", prompt=f"Ann has {i} pens.\n", sampling=Sampling(max_tokens=4)) for i in range(7)
    ]
    results = backend.generate(requests)
    assert [r.request_id for r in results] == [f"r{i}" for i in range(7)]
    assert all(r.error is None for r in results)
    assert sizes[:3] == [7, 4, 2] and max(sizes[3:]) <= 2


@pytest.mark.parametrize("family", ["llama", "qwen2", "gpt2"])
def test_greedy_tokens_equal_generate_and_drop_finished_rows(
    family: str, arith_tokenizer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The compacting greedy decoder gives ``generate(do_sample=False)``'s tokens, row by row,
    on a batch whose rows end at many different steps (so rows leave the batch mid-way)."""
    from collections import Counter

    from transformers import AutoModelForCausalLM

    from prefdelta.worlds.arith import ArithSpec, make_problems, prompt_text
    from prefdelta.zoo.config import ZooModelSpec
    from prefdelta.zoo.models import make_config

    torch.manual_seed(3)
    config = make_config(ZooModelSpec(id="t", family=family, hidden=32, layers=2, heads=4), arith_tokenizer)
    config.initializer_range = 0.5  # large weights: varied tokens (a small init repeats one token)
    model = AutoModelForCausalLM.from_config(config).eval()
    prompts = [prompt_text(p.text) for p in make_problems(ArithSpec(max_steps=3), 40, seed=5)]
    arith_tokenizer.padding_side = "left"
    enc = arith_tokenizer(prompts, return_tensors="pt", padding=True)
    width = enc["input_ids"].shape[1]
    pad = arith_tokenizer.pad_token_id
    with torch.inference_mode():
        free = model.generate(**enc, max_new_tokens=16, do_sample=False, pad_token_id=pad, eos_token_id=None)
    # a random model rarely says EOS: call "EOS" the token whose first use varies most across rows
    rows = free[:, width:].tolist()
    firsts = {t: {r.index(t) for r in rows if t in r} for t in {t for r in rows for t in r}}
    eos = max(firsts, key=lambda t: (len(firsts[t]), sum(t in r for r in rows)))
    with torch.inference_mode():
        ref = model.generate(**enc, max_new_tokens=16, do_sample=False, pad_token_id=pad, eos_token_id=eos)
    expected = []
    for row in ref[:, width:].tolist():
        expected.append(row[: row.index(eos) + 1] if eos in row else row)
    from transformers import DynamicCache

    drops: list[int] = []
    select = DynamicCache.batch_select_indices
    monkeypatch.setattr(
        DynamicCache, "batch_select_indices", lambda c, i: (drops.append(len(i)), select(c, i))[1]
    )
    got = hf.greedy_tokens(model, enc["input_ids"], enc["attention_mask"], 16, eos)
    assert got == expected
    assert drops and drops == sorted(drops, reverse=True) and drops[-1] < len(prompts)  # rows did leave
    lengths = Counter(len(r) for r in got)
    assert len(lengths) >= 4 and lengths[16] < len(got)  # rows ended at several steps, most before the budget
