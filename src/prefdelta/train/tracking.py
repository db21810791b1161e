"""Experiment trackers (``train.report_to``: tensorboard, wandb, mlflow) through accelerate.

accelerate owns the trackers; this module only checks that their packages are installed
(``pip install 'prefdelta[tracking]'``) before a run writes anything, and says where each
writes: TensorBoard to ``<run>/tb``, W&B to ``<run>/wandb`` (``WANDB_MODE=offline`` keeps
it on disk), MLflow to ``$MLFLOW_TRACKING_URI`` or else the file store ``<run>/mlruns``
(``MLFLOW_ALLOW_FILE_STORE`` is set for a file store, which MLflow 3 otherwise refuses).
Every scalar of ``metrics.jsonl`` is logged as ``train/<name>`` per optimizer step.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Sequence
from pathlib import Path

from prefdelta.errors import MissingDependency
from prefdelta.train.config import TrainHyper

PROJECT = "prefdelta"
PACKAGES = {"tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlflow"}


def check_trackers(report_to: Sequence[str]) -> None:
    """Raise :class:`MissingDependency` naming the extra when a tracker's package is absent."""
    for name in report_to:
        if importlib.util.find_spec(PACKAGES[name]) is None:
            raise MissingDependency(PACKAGES[name], "tracking", f"train.report_to: {name}")


def project_config(out_dir: Path):
    """accelerate's project layout for a run: TensorBoard event files under ``<run>/tb``."""
    from accelerate.utils import ProjectConfiguration

    return ProjectConfiguration(project_dir=str(out_dir), logging_dir=str(out_dir / "tb"))


def flat_config(hp: TrainHyper) -> dict[str, int | float | str | bool]:
    """The run's hyper-parameters as scalars (what TensorBoard's hparams and MLflow accept)."""
    out: dict[str, int | float | str | bool] = {}
    for key, value in hp.model_dump(mode="json").items():
        items = value.items() if isinstance(value, dict) else [("", value)]
        for sub, v in items:
            name = f"{key}.{sub}" if sub else key
            out[name] = v if isinstance(v, (int, float, str, bool)) else str(v)
    return out


def start_trackers(accelerator, out_dir: Path, hp: TrainHyper) -> None:
    """Start the run's trackers (main process) with its hyper-parameters as their config."""
    if "mlflow" in hp.report_to:
        uri = os.environ.get("MLFLOW_TRACKING_URI", "")
        if uri.startswith("file:") or not uri:
            # MLflow 3 refuses its file store unless asked: a local store is what runs
            # without a server use (mlflow-skinny has no SQL backend)
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        if not uri:
            import mlflow

            mlflow.set_tracking_uri((out_dir / "mlruns").resolve().as_uri())
    accelerator.init_trackers(
        PROJECT,
        config=flat_config(hp),
        init_kwargs={
            "wandb": {"dir": str(out_dir), "name": out_dir.name},
            "mlflow": {"run_name": out_dir.name},
        },
    )


def finish_trackers(accelerator) -> None:
    """Flush and close every tracker (not ``end_training``: that also tears down the
    process group the run still needs to save)."""
    for tracker in accelerator.trackers:
        tracker.finish()
