"""Training reports to TensorBoard, W&B (offline) and MLflow (a local file store) through
accelerate's trackers; the live step bar; a missing tracker package is a one-line error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from prefdelta.errors import MissingDependency
from prefdelta.train.config import TrainHyper
from prefdelta.train.logprobs import encode_pairs
from prefdelta.train.trainer import train_preference
from prefdelta.worlds.arith import ArithSpec, make_problems, prompt_text, reference_trace

HP = dict(lr=1e-3, epochs=1, batch_size=2, beta=0.2, warmup_ratio=0.0)


@pytest.fixture(scope="module")
def pairs(arith_tokenizer):
    problems = make_problems(ArithSpec(max_steps=2), 6, seed=3)
    prompts = [prompt_text(p.text) for p in problems]
    chosen = [reference_trace(p) for p in problems]
    rejected = [reference_trace(problems[(i + 1) % 6]) for i in range(6)]
    return encode_pairs(arith_tokenizer, prompts, chosen, rejected)[0]


def _curve(run: Path) -> list[dict[str, float]]:
    return [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]


def _tensorboard_losses(folder: Path) -> list[float]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder / "prefdelta"))  # hparams go to a sub-folder of their own
    acc.Reload()
    return [e.value for e in acc.Scalars("train/loss")]


@pytest.mark.integration
def test_tensorboard_wandb_and_mlflow_get_every_step(tmp_path, monkeypatch, trained_model_dir, pairs):
    pytest.importorskip("tensorboard")
    pytest.importorskip("wandb")
    mlflow = pytest.importorskip("mlflow")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    store = (tmp_path / "mlruns").as_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # for this test's client
    hp = TrainHyper(**HP, report_to=["tensorboard", "wandb", "mlflow"])
    run = tmp_path / "run"
    train_preference(trained_model_dir, pairs, hp, run, ref_cache_root=tmp_path / "rc")
    losses = [m["loss"] for m in _curve(run)]
    assert len(losses) == 3

    assert _tensorboard_losses(run / "tb") == pytest.approx(losses, rel=1e-6)

    (wandb_run,) = list((run / "wandb").glob("offline-run-*"))
    assert any(wandb_run.glob("*.wandb"))  # the offline run's log, for `wandb sync`

    client = mlflow.MlflowClient(tracking_uri=store)
    (experiment,) = [e for e in client.search_experiments() if e.name == "prefdelta"]
    (mrun,) = client.search_runs([experiment.experiment_id])
    assert mrun.info.run_name == "run"
    history = sorted(client.get_metric_history(mrun.info.run_id, "train/loss"), key=lambda m: m.step)
    assert [m.step for m in history] == [1, 2, 3]
    assert [m.value for m in history] == pytest.approx(losses, rel=1e-6)
    assert mrun.data.params["algorithm"] == "dpo" and float(mrun.data.params["beta"]) == 0.2


@pytest.mark.integration
def test_mlflow_without_a_tracking_uri_writes_into_the_run(tmp_path, monkeypatch, trained_model_dir, pairs):
    mlflow = pytest.importorskip("mlflow")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # for this test's client
    monkeypatch.chdir(tmp_path)  # nothing may land in the working folder
    run = tmp_path / "run"
    train_preference(trained_model_dir, pairs, TrainHyper(**HP, report_to=["mlflow"]), run)
    client = mlflow.MlflowClient(tracking_uri=(run / "mlruns").as_uri())
    (experiment,) = [e for e in client.search_experiments() if e.name == "prefdelta"]
    (mrun,) = client.search_runs([experiment.experiment_id])
    assert len(client.get_metric_history(mrun.info.run_id, "train/margin")) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_a_missing_tracker_package_names_the_extra(tmp_path, monkeypatch, trained_model_dir, pairs):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a)
    )
    with pytest.raises(
        MissingDependency, match=r"train.report_to: wandb needs the 'wandb' package.*\[tracking\]"
    ):
        train_preference(trained_model_dir, pairs, TrainHyper(**HP, report_to=["wandb"]), tmp_path / "run")
    assert not (tmp_path / "run").exists()  # nothing written


def test_report_to_names_known_trackers_only():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="report_to"):
        TrainHyper(report_to=["neptune"])
    assert TrainHyper().report_to == []


@pytest.mark.integration
def test_step_bar_shows_loss_margin_and_accuracy(tmp_path, capsys, trained_model_dir, pairs):
    from prefdelta.train.dpo import step_progress

    seen: list[tuple[int, int]] = []
    with step_progress("r1") as on_step:

        def both(step: int, total: int, metrics: dict[str, float]) -> None:
            seen.append((step, total))
            on_step(step, total, metrics)

        train_preference(trained_model_dir, pairs, TrainHyper(**HP), tmp_path / "run", on_step=both)
    assert seen == [(1, 3), (2, 3), (3, 3)]
    last = _curve(tmp_path / "run")[-1]
    err = capsys.readouterr().err  # off a terminal: the last status, once
    line = [ln for ln in err.splitlines() if ln.startswith("train: r1:")]
    assert line == [
        f"train: r1: 3/3 loss {last['loss']:.4g}  margin {last['margin']:.4g}  "
        f"acc {last['preference_accuracy']:.4g}"
    ]


def test_a_step_bar_opened_under_the_runs_bar_is_a_row_of_the_same_display(monkeypatch):
    import io

    from rich.console import Console

    from prefdelta import progress

    screen = io.StringIO()
    monkeypatch.setattr(progress, "console", Console(file=screen, force_terminal=True, width=120))
    with progress.bar("train: runs", 2) as advance:
        outer = progress._showing[-1]
        with progress.status_bar("train: r1") as update:  # rich allows one live display
            assert progress._showing == [outer] and len(outer.tasks) == 2
            update(3, 3, "loss 0.5  margin 0.1  acc 1")
            outer.refresh()  # draw now (the display's own refresh thread runs at 10 Hz)
        assert len(outer.tasks) == 1  # the run's row leaves with the run
        advance(1)
    assert progress._showing == []
    assert "loss 0.5  margin 0.1  acc 1" in screen.getvalue()
