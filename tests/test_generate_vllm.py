"""The vllm backend: a clear message without vllm; explicit SamplingParams and LLM arguments.

vLLM needs a GPU and is not installed on CPU machines, so the mapping to its API is
checked against a stand-in ``vllm`` module that records what it is given.
"""

from __future__ import annotations

import sys
import types
from dataclasses import dataclass, field
from typing import Any

import pytest

from prefdelta.errors import MissingDependency
from prefdelta.generate.base import Backend, Request, Sampling


def test_missing_vllm_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "vllm", None)  # import vllm -> ImportError
    from prefdelta.generate.vllm import VLLMBackend

    with pytest.raises(MissingDependency, match=r"pip install 'prefdelta\[vllm\]'"):
        VLLMBackend("some/model")


@dataclass
class _Completion:
    text: str
    token_ids: list[int]
    finish_reason: str


@dataclass
class _Output:
    prompt_token_ids: list[int]
    outputs: list[_Completion] = field(default_factory=list)
    prompt: str | None = None  # vLLM's RequestOutput.prompt: the text the engine tokenized


def _fake_vllm(record: dict[str, Any]) -> types.ModuleType:
    mod = types.ModuleType("vllm")

    class SamplingParams:
        def __init__(self, **kw: Any) -> None:
            self.kw = kw

    class LLM:
        def __init__(self, **kw: Any) -> None:
            record["llm"] = kw

        def _run(self, items: list[str], params: list[SamplingParams]) -> list[_Output]:
            record.setdefault("params", []).extend(p.kw for p in params)
            return [
                _Output(
                    [1, 2, 3],
                    [_Completion(f"{i}-{j}", [7] * (j + 1), "length") for j in range(p.kw["n"])],
                    prompt=item,
                )
                for i, (item, p) in enumerate(zip(items, params, strict=True))
            ]

        def generate(self, prompts: list[str], params: list[SamplingParams], use_tqdm: bool) -> list[_Output]:
            return self._run(prompts, params)

        def chat(self, messages: list[Any], params: list[SamplingParams], use_tqdm: bool) -> list[_Output]:
            record["chat"] = messages
            rendered = [
                "".join(f"<{m['role']}>{m['content']}" for m in conv) + "<assistant>" for conv in messages
            ]
            return self._run(rendered, params)

    mod.SamplingParams = SamplingParams
    mod.LLM = LLM
    return mod


def test_sampling_params_and_results(monkeypatch: pytest.MonkeyPatch) -> None:
    record: dict[str, Any] = {}
    monkeypatch.setitem(sys.modules, "vllm", _fake_vllm(record))
    from prefdelta.generate.vllm import VLLMBackend

    backend = VLLMBackend("org/model", tensor_parallel_size=2, max_model_len=2048)
    assert isinstance(backend, Backend)
    assert record["llm"]["generation_config"] == "vllm" and record["llm"]["tensor_parallel_size"] == 2
    results = backend.generate(
        [
            Request("c", messages=({"role": "user", "content": "hi"},), sampling=Sampling(max_tokens=64)),
            Request("p", prompt="2+2=", sampling=Sampling(temperature=0.7, n=2, seed=5, stop=("\n\n",))),
        ]
    )
    assert [(r.request_id, r.index) for r in results] == [("c", 0), ("p", 0), ("p", 1)]
    prompt_params, chat_params = record["params"]
    assert prompt_params == {
        "n": 2,
        "temperature": 0.7,
        "top_p": 1.0,
        "seed": 5,
        "max_tokens": 256,
        "stop": ["\n\n"],
    }
    assert chat_params["max_tokens"] == 64 and chat_params["stop"] is None
    assert record["chat"] == [[{"role": "user", "content": "hi"}]]
    assert results[2].completion_tokens == 2 and results[2].prompt_tokens == 3
    assert results[2].finish_reason == "length"
    # the text each prompt became: the chat template's rendering, or the plain prompt
    assert results[0].prompt_text == "<user>hi<assistant>"
    assert results[1].prompt_text == results[2].prompt_text == "2+2="
