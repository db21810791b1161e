"""Prompt templates as data, generator configs, and the hub fallback offline."""

from __future__ import annotations

from pathlib import Path

import pytest

from prefdelta.errors import UserError
from prefdelta.generate.config import GeneratorsFile, SamplingSpec
from prefdelta.generate.prompts import builtin_templates, load_template, template_for_source
from prefdelta.study.spec import parse_config


def test_builtin_templates_cover_every_source() -> None:
    from prefdelta.sources.registry import SPLITS

    for source in SPLITS:
        assert template_for_source(source).name != "raw", source
    math = template_for_source("math500")
    assert math.answer_format == "boxed"
    # literal braces in the instruction survive; the problem may contain braces too
    [msg] = math.messages("Find $\\frac{1}{2}$.")
    assert "\\boxed{}" in msg["content"] and msg["content"].endswith("Problem: Find $\\frac{1}{2}$.")
    assert template_for_source("arith").text("Ann has 7 apples.\n") == "Ann has 7 apples.\n"
    assert template_for_source("humaneval").text("def f():\n") == "def f():\n"
    assert set(builtin_templates()) >= {
        "gsm8k",
        "math_boxed",
        "mmlu_choice",
        "humaneval_code",
        "arith",
        "raw",
    }


def test_template_files_and_errors(tmp_path: Path) -> None:
    good = tmp_path / "mine.yaml"
    good.write_text(
        "name: mine\nsystem: Be brief.\nuser: 'Q: {problem}'\ncompletion: 'Q: {problem}\\nA:'\nstop: [\"\\n\\n\"]\n"
    )
    t = load_template(good)
    assert t.messages("x") == (
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Q: x"},
    )
    assert t.stop == ("\n\n",)
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nuser: 'no placeholder'\ncompletion: '{problem}'\n")
    with pytest.raises(UserError, match=r"bad\.yaml: field 'user' must contain \{problem\}"):
        load_template(bad)
    bad.write_text("name: bad\nuser: '{problem}'\ncompletion: '{problem}'\nstops: []\n")
    with pytest.raises(UserError, match="unknown field 'stops'"):
        load_template(bad)
    bad.write_text("name: [unclosed\n")
    with pytest.raises(UserError, match=r"bad\.yaml: line \d+, column \d+: not valid YAML"):
        load_template(bad)
    with pytest.raises(UserError, match="unknown prompt template 'nope'"):
        load_template("nope")


def test_generator_specs() -> None:
    data = {
        "sampling": {"samples": 2, "max_tokens": 64},
        "generators": [
            {"id": "a", "model": "m", "backend": "vllm", "vllm": {"tensor_parallel_size": 2}},
            {
                "id": "b",
                "model": "m",
                "backend": "openai",
                "openai": {"base_urls": ["http://x/v1"]},
                "sampling": {"temperature": 0.0},
            },
        ],
    }
    spec = parse_config(data, "gens.yaml", GeneratorsFile)
    assert spec.generators[0].vllm.tensor_parallel_size == 2
    assert spec.generators[1].sampling_for(spec.sampling) == SamplingSpec(
        samples=2, max_tokens=64, temperature=0.0
    )
    data["generators"][1]["id"] = "a"
    with pytest.raises(UserError, match="'a' appears twice"):
        parse_config(data, "gens.yaml", GeneratorsFile)
    data["generators"][1] = {
        "id": "c",
        "model": "m",
        "backend": "openai",
        "openai": {"base_urls": ["u"], "extra_body": {"api_key": "sk"}},
    }
    with pytest.raises(UserError, match="environment variable"):
        parse_config(data, "gens.yaml", GeneratorsFile)


def test_hub_fallback_offline_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from prefdelta.sources.registry import load_source

    monkeypatch.delenv("PREFDELTA_DATA_DIR", raising=False)
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(UserError, match=r"could not load HuggingFaceH4/MATH-500 .*pass --data-dir"):
        load_source("math500")
