"""The stage table: every stage of a study, in order. ``prefdelta run`` walks it; the CLI
builds one command per row (``prefdelta <stage>``), with the row's help text."""

from __future__ import annotations

from prefdelta.evaluate.stage import STAGE as EVAL
from prefdelta.generate.stage import STAGE as GENERATE
from prefdelta.judge.stage import STAGE as JUDGE
from prefdelta.pairs.stage import STAGE as PAIRS
from prefdelta.problems.stage import STAGE as PROBLEMS
from prefdelta.report.stage import STAGE as REPORT
from prefdelta.select.stage import STAGE as SELECT
from prefdelta.study.stage import Stage
from prefdelta.train.stage import STAGE as TRAIN
from prefdelta.zoo.stage import STAGE as ZOO

STAGES: tuple[Stage, ...] = (PROBLEMS, ZOO, GENERATE, JUDGE, PAIRS, SELECT, TRAIN, EVAL, REPORT)
BY_NAME: dict[str, Stage] = {s.name: s for s in STAGES}
