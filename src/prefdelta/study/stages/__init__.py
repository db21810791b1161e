"""The stages of a study on the arith world: each reads and writes workspace tables.

Every stage computes a cache key from its input tables, its config section and the
source of the modules that do its work; when the key matches its last completion it
is skipped. Stages that take long split their work into shards (one per generator, run
or model) so that a killed stage resumes where it stopped. One module per stage.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from prefdelta.config import StudyConfig
from prefdelta.study.stages.base import StageResult
from prefdelta.study.stages.eval import stage_eval
from prefdelta.study.stages.generate import stage_generate
from prefdelta.study.stages.judge import stage_judge
from prefdelta.study.stages.pairs import stage_pairs, stage_select
from prefdelta.study.stages.problems import stage_problems
from prefdelta.study.stages.report import stage_report
from prefdelta.study.stages.train import stage_train
from prefdelta.study.stages.zoo import stage_zoo
from prefdelta.workspace import Workspace

STAGES: dict[str, Callable[..., StageResult]] = {
    "problems": stage_problems,
    "zoo": stage_zoo,
    "generate": stage_generate,
    "judge": stage_judge,
    "pairs": stage_pairs,
    "select": stage_select,
    "train": stage_train,
    "eval": stage_eval,
    "report": stage_report,
}


def run_study(ws: Workspace, cfg: StudyConfig, force: bool = False) -> list[StageResult]:
    """Run every stage in order (each skipped when up to date)."""
    torch.set_num_threads(cfg.threads)
    return [fn(ws, cfg, force=force) for fn in STAGES.values()]
