"""Every problem source by name: its loader, splits, and the exact grader of its answers.

One table serves the problems stage (pair problems), the eval stage (benchmark suites)
and the generators' capability: a problem is always graded by its source's grader, so
a generator's capability and a student's accuracy are measured the same way.

Adding a source is one module ``prefdelta/sources/<name>.py`` with ``load(split,
data_dir, **options) -> problems frame`` plus one line here (its module name spelled
out, so that the stages' cache keys cover its code).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from prefdelta.errors import UserError


@dataclass(frozen=True)
class SourceInfo:
    """A problem source: ``splits`` (empty: any label, for generated worlds), ``grader`` (the
    exact grader of its answers: arith, gsm8k, boxed, choice or humaneval), ``domain`` it
    usually serves (math / stem / code), whether it is generated offline (``world``), and the
    ``license`` of its published data as a Hugging Face Hub licence id (for dataset cards of
    exports built on it; "unknown" where the source does not state one)."""

    name: str
    module: str
    splits: tuple[str, ...]
    grader: str
    domain: str
    world: bool = False
    license: str = "unknown"

    def load(self, split: str, data_dir: str | Path | None = None, **options: Any) -> pd.DataFrame:
        return importlib.import_module(self.module).load(split=split, data_dir=data_dir, **options)


SOURCES: dict[str, SourceInfo] = {
    s.name: s
    for s in (
        # the module names are literals so that stage cache keys see them (study/codehash.py)
        SourceInfo("arith", "prefdelta.sources.arith", (), "arith", "math", world=True, license="mit"),
        SourceInfo("gsm8k", "prefdelta.sources.gsm8k", ("train", "test"), "gsm8k", "math", license="mit"),
        SourceInfo("math500", "prefdelta.sources.math500", ("test",), "boxed", "math", license="mit"),
        SourceInfo("minerva_math", "prefdelta.sources.minerva_math", ("test",), "boxed", "math"),
        SourceInfo("aime24", "prefdelta.sources.aime24", ("test",), "boxed", "math"),
        SourceInfo("amc23", "prefdelta.sources.amc23", ("test",), "boxed", "math"),
        SourceInfo("svamp", "prefdelta.sources.svamp", ("test",), "gsm8k", "math", license="mit"),
        SourceInfo("mmlu_stem", "prefdelta.sources.mmlu_stem", ("test",), "choice", "stem", license="mit"),
        SourceInfo("humaneval", "prefdelta.sources.humaneval", ("test",), "humaneval", "code", license="mit"),
    )
}
SPLITS: dict[str, tuple[str, ...]] = {n: s.splits for n, s in SOURCES.items() if not s.world}
"""Splits of the published benchmarks (the sources read from files)."""


def source_info(source: str, field: str = "source") -> SourceInfo:
    """The :class:`SourceInfo` of ``source``; a :class:`UserError` naming ``field`` when unknown."""
    if source not in SOURCES:
        raise UserError(
            f"{field}: unknown problem source '{source}'; known: {', '.join(SOURCES)} "
            "(or a file: path: FILE, or a hub dataset: hub: ID)"
        )
    return SOURCES[source]


def source_license(source: str) -> str:
    """The licence id of a source's data; "unknown" for a user's own or a hub dataset."""
    info = SOURCES.get(source)
    return info.license if info is not None else "unknown"


def check_split(source: str, split: str, field: str = "split") -> None:
    info = source_info(source)
    if info.splits and split not in info.splits:
        raise UserError(f"{field}: {source} has split(s) {', '.join(info.splits)}; got '{split}'")


def load_source(
    source: str, split: str = "test", data_dir: str | Path | None = None, **options: Any
) -> pd.DataFrame:
    """``problems`` rows of a built-in source (``prefdelta.sources.<source>.load``)."""
    check_split(source, split)
    return source_info(source).load(split, data_dir, **options)
