"""Shared fixtures. Tiny models are built locally and saved with save_pretrained; nothing
is ever loaded from a hub."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
torch.set_num_threads(1)

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATASETS = Path(os.environ.get("PREFDELTA_DATA_DIR", ROOT.parent / "shared" / "datasets"))


@pytest.fixture(scope="session")
def shared_datasets() -> Path:
    """``../shared/datasets`` (or $PREFDELTA_DATA_DIR); tests skip with a reason when absent."""
    if not SHARED_DATASETS.is_dir():
        pytest.skip(f"real data sets not found at {SHARED_DATASETS} (set PREFDELTA_DATA_DIR)")
    return SHARED_DATASETS


@pytest.fixture(scope="session")
def arith_tokenizer():
    """The zoo tokenizer, built from a small arith corpus."""
    from prefdelta.zoo.models import build_tokenizer, tokenizer_corpus

    return build_tokenizer(tokenizer_corpus(n=300), vocab_size=400)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, arith_tokenizer) -> Path:
    """A random-init tiny Llama with the arith tokenizer, saved with save_pretrained."""
    from transformers import AutoModelForCausalLM

    from prefdelta.checkpoints import save_model
    from prefdelta.zoo.config import ZooModelSpec
    from prefdelta.zoo.models import make_config

    torch.manual_seed(0)
    spec = ZooModelSpec(id="tiny", family="llama", hidden=32, layers=1, heads=2)
    model = AutoModelForCausalLM.from_config(make_config(spec, arith_tokenizer))
    out = tmp_path_factory.mktemp("models") / "tiny-llama"
    save_model(model, arith_tokenizer, out)
    return out


@pytest.fixture(scope="session")
def trained_model_dir(tmp_path_factory, arith_tokenizer) -> Path:
    """A tiny Llama trained briefly on arith traces (weak but not random), saved to a folder."""
    from prefdelta.worlds.arith import ArithSpec, make_problems
    from prefdelta.zoo.config import ZooModelSpec
    from prefdelta.zoo.models import train_generator

    spec = ZooModelSpec(id="trained", family="llama", hidden=32, layers=1, heads=2, steps=60, warmup=5)
    out = tmp_path_factory.mktemp("models") / "trained-llama"
    train_generator(spec, arith_tokenizer, make_problems(ArithSpec(), 500, seed=0), out)
    return out


def run_stage(ws, cfg, name: str, force: bool = False):
    """Run one stage of the stage table (what `prefdelta <name>` does); its StageResult."""
    from prefdelta.study.runner import run_study
    from prefdelta.study.stages import BY_NAME

    return run_study(ws, cfg, force=force, stages=(BY_NAME[name],))[0]


def spec_from(data: dict, tmp_path: Path | None = None):
    """A validated spec from a mapping (a test's edited copy of a template)."""
    from prefdelta.study.spec import parse_spec

    return parse_spec(data, "test spec")


def template_data(name: str = "demo") -> dict:
    """A shipped template as a mapping (its ``extends`` resolved), to edit in a test."""
    from prefdelta.study.spec import spec_data

    return spec_data(template=name)[0]


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Each test starts and ends with one torch thread (a study run in-process sets the
    spec's count; numeric comparisons must not depend on test order)."""
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(1)
