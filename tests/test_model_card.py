"""`prefdelta model card` / `model push`: the model card of a trained run of a finished tiny
study (a full fine-tune and a LoRA adapter), and the Hub calls of a push, checked against a
monkeypatched ``HfApi`` — nothing is ever uploaded."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import ClassVar

import pytest
import yaml

from prefdelta.cli import main
from prefdelta.workspace import Workspace

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "tests" / "data" / "tiny_study.yaml"
SMALL = ("-s", "train.selections=[top]", "-s", "train.seeds=[0]")  # two runs: dpo and kto


def _study(ws: Path, *overrides: str) -> Path:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "prefdelta.cli.entry",
        "run",
        "-c",
        str(TINY),
        "-w",
        str(ws),
        *SMALL,
        *overrides,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return ws


@pytest.fixture(scope="module")
def full_ws(tmp_path_factory) -> Path:
    return _study(tmp_path_factory.mktemp("full"))


@pytest.fixture(scope="module")
def adapter_ws(tmp_path_factory) -> Path:
    return _study(tmp_path_factory.mktemp("lora"), "-s", "student.lora.r=4", "-s", "student.lora.merge=false")


class FakeApi:
    """Records the calls a push makes instead of making them."""

    calls: ClassVar[list[tuple[str, tuple, dict]]] = []

    def create_repo(self, *args, **kwargs):
        self.calls.append(("create_repo", args, kwargs))

    def upload_folder(self, *args, **kwargs):
        self.calls.append(("upload_folder", args, kwargs))


@pytest.fixture
def fake_hub(monkeypatch) -> list[tuple[str, tuple, dict]]:
    import huggingface_hub

    calls: list[tuple[str, tuple, dict]] = []
    monkeypatch.setattr(FakeApi, "calls", calls)
    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    return calls


def _cli(capsys, *args: str) -> str:
    main(list(args))
    return capsys.readouterr().out


def _exit_message(capsys, *args: str) -> str:
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1
    return err


def _card(path: Path) -> tuple[dict, str]:
    _, meta, body = path.read_text().split("---\n", 2)
    return yaml.safe_load(meta), body


def _run(ws: Path, algorithm: str) -> dict:
    runs = Workspace(ws).read_table("runs")
    return runs[runs["algorithm"] == algorithm].iloc[0].to_dict()


@pytest.mark.integration
def test_card_of_a_full_run_states_base_hyper_selection_and_evals(full_ws, capsys, fake_hub):
    run = _run(full_ws, "dpo")
    printed = _cli(capsys, "model", "card", run["run_id"], "-w", str(full_ws))
    card = full_ws / run["checkpoint"] / "README.md"
    assert printed.strip() == str(card)
    meta, body = _card(card)
    assert fake_hub == []  # writing a card uploads nothing
    assert meta["library_name"] == "transformers" and meta["pipeline_tag"] == "text-generation"
    assert {"prefdelta", "dpo"} <= set(meta["tags"]) and "lora" not in meta["tags"]
    assert "base_model" not in meta  # the zoo student is a local folder, not a Hub id
    block = meta["prefdelta"]
    assert block["base"] == {"model": run["base_model"], "path": run["base_path"]}
    hyper = json.loads((full_ws / "runs" / run["run_id"] / "hyper.json").read_text())
    assert block["hyper"] == hyper and hyper["beta"] == 0.1 and hyper["lr"] == 0.0001
    sel = block["selection"]
    assert sel["selection_id"] == run["selection_id"] and sel["strategy"] == "top"
    assert sel["n_pairs"] == run["n_pairs"] > 0 and sel["key"] == "step_coherence" and sel["fraction"] == 0.5
    evals = Workspace(full_ws).read_table("evals")
    mine = evals[evals["model_id"] == run["run_id"]]
    assert len(block["evals"]) == len(mine) == 4  # two suites: a benchmark row and a suite row each
    for row in block["evals"]:
        match = mine[(mine["benchmark"] == row["benchmark"]) & (mine["level"] == row["level"])].iloc[0]
        assert (row["value"], row["ci_low"], row["ci_high"]) == (
            match["value"],
            match["ci_low"],
            match["ci_high"],
        )
        line = f"| {row['value']:.3f} | [{row['ci_low']:.3f}, {row['ci_high']:.3f}] |"
        assert line in body
    base = evals[(evals["model_id"] == run["base_model"]) & (evals["level"] == "benchmark")]
    for _, b in base.iterrows():  # the base's value beside the run's
        assert f"| {b['suite']} | {b['domain']} | {b['benchmark']} | accuracy |" in body
        assert any(
            ln.endswith(f"| {b['value']:.3f} |") and f"| {b['benchmark']} | accuracy" in ln
            for ln in body.splitlines()
        )
    assert "**Weights:** full fine-tune: a plain model." in body
    assert f"n_pairs: {run['n_pairs']}" in body and '"beta": 0.1' in body
    # a Hub id for the base and the data it trained on go into the metadata
    _cli(
        capsys,
        "model",
        "card",
        run["run_id"],
        "-w",
        str(full_ws),
        "--base-model",
        "me/base",
        "--dataset",
        "me/pairs",
    )
    meta, _ = _card(card)
    assert meta["base_model"] == "me/base" and meta["datasets"] == ["me/pairs"]


@pytest.mark.integration
def test_push_uploads_the_final_folder_with_its_card_private_unless_public(adapter_ws, capsys, fake_hub):
    run = _run(adapter_ws, "kto")
    final = adapter_ws / run["checkpoint"]
    out = _cli(capsys, "model", "push", run["run_id"], "-w", str(adapter_ws), "--repo-id", "me/tiny-kto")
    assert "to the hub: me/tiny-kto" in out
    (name, args, kwargs), (name2, args2, kwargs2) = fake_hub
    assert name == "create_repo" and args == ("me/tiny-kto",)
    assert kwargs == {"repo_type": "model", "private": True, "exist_ok": True}
    assert name2 == "upload_folder" and args2 == ()
    assert kwargs2["repo_id"] == "me/tiny-kto" and kwargs2["repo_type"] == "model"
    assert Path(kwargs2["folder_path"]) == final
    # the adapter stays an adapter, and its card (which replaced peft's) names the base
    assert (final / "adapter_config.json").is_file() and not (final / "config.json").exists()
    meta, body = _card(final / "README.md")
    assert meta["library_name"] == "peft" and {"kto", "lora", "prefdelta"} <= set(meta["tags"])
    assert meta["prefdelta"]["adapter"] is True and meta["prefdelta"]["hyper"]["lora"]["r"] == 4
    assert f"**Base model:** `{run['base_model']}` ({run['base_path']})." in body
    assert "a LoRA adapter" in body
    fake_hub.clear()
    _cli(capsys, "model", "push", run["run_id"], "-w", str(adapter_ws), "--repo-id", "me/x", "--public")
    assert fake_hub[0][2]["private"] is False


@pytest.mark.integration
def test_unknown_run_is_one_line_and_touches_nothing(full_ws, capsys, fake_hub):
    msg = _exit_message(capsys, "model", "push", "no-such-run", "-w", str(full_ws), "--repo-id", "me/x")
    assert "run 'no-such-run' is not in the runs table" in msg and fake_hub == []
    run = _run(full_ws, "kto")
    msg = _exit_message(
        capsys, "model", "card", run["run_id"], "-w", str(full_ws), "--dataset", "not a dataset"
    )
    assert "dataset: 'not a dataset' is not a Hugging Face Hub id" in msg


def test_bad_repo_id_exits_before_reading_the_workspace(tmp_path, capsys, fake_hub):
    ws = tmp_path / "empty"
    for repo in ("no-owner", "me/has space", "me/x/y"):
        msg = _exit_message(capsys, "model", "push", "r", "-w", str(ws), "--repo-id", repo)
        assert "--repo-id:" in msg and repo in msg
    assert fake_hub == [] and not (ws / "tables").exists()


def _info(tmp_path: Path, base_path: str, base_is_local: bool):
    """A RunInfo as read_run makes it, for a run whose base was ``base_path``."""
    import pandas as pd

    from prefdelta.train.card import RunInfo

    run = {
        "run_id": "dpo-x", "algorithm": "dpo", "variant": "dpo", "base_model": "base", "base_path": base_path,
        "seed": 0, "lora": True, "adapter": True, "final_loss": 0.5, "final_margin": 0.2, "n_truncated": 0,
        "n_dropped": 0, "launcher": "in_process",
    }  # fmt: skip
    selection = {"selection_id": "all-all-1", "strategy": "all", "n_pairs": 8, "pair_updates": 8}
    return RunInfo(run, {"beta": 0.1}, selection, pd.DataFrame(), tmp_path, base_is_local)


def test_the_base_is_declared_only_when_it_is_a_hub_id(tmp_path):
    from prefdelta.train.card import card_text

    meta = yaml.safe_load(card_text(_info(tmp_path, "Qwen/Qwen2.5-0.5B", False)).split("---\n", 2)[1])
    assert meta["base_model"] == "Qwen/Qwen2.5-0.5B" and meta["library_name"] == "peft"
    for path, local in (("models/student", True), ("/data/gone/student", False)):
        text = card_text(_info(tmp_path, path, local))
        assert "base_model:" not in text and f"({path})" in text and "Not evaluated yet" in text
    text = card_text(_info(tmp_path, "/data/gone/student", False), base_model="me/student")
    assert "base_model: me/student" in text
