"""Rich progress bars for long loops, on the stderr console that log lines share.

Bars opened while another is showing become rows of the same display (rich shows one
live display at a time): a training run's step bar sits under the stage's bar of runs.
The CLI's log handler (:mod:`prefdelta.logs`) prints through :data:`console` too, so a
log line written while a bar is live lands above it. ``--quiet`` turns bars off
(:func:`set_bars`), their plain end-of-loop lines off a terminal included.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

console = Console(stderr=True)
_showing: list[Progress] = []
_bars = [True]


def set_bars(shown: bool) -> None:
    """Show progress bars (the default) or not (``--quiet``)."""
    _bars[0] = shown


def bars_shown() -> bool:
    """Whether bars are on (the CLI restores this when it returns)."""
    return _bars[0]


@contextlib.contextmanager
def _task(description: str, total: int | None) -> Iterator[tuple[Progress, TaskID]]:
    """A row in the display now showing, or a new display when none is."""
    own = not _showing
    if own:
        progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[status]}"),
            console=console,
            transient=False,
            disable=not (console.is_terminal and _bars[0]),
        )
        progress.start()
        _showing.append(progress)
    else:
        progress = _showing[-1]
    task = progress.add_task(description, total=total, status="")
    try:
        yield progress, task
    finally:
        if own:
            progress.stop()
            _showing.pop()
        else:
            progress.remove_task(task)


@contextlib.contextmanager
def bar(description: str, total: int) -> Iterator[Callable[[int], None]]:
    """A progress bar; yields ``advance(n)``. Falls back to plain lines off a terminal."""
    with _task(description, total) as (progress, task):
        yield lambda n=1: progress.advance(task, n)
    if not console.is_terminal and _bars[0]:
        console.print(f"{description}: {total}/{total} done")


def format_status(values: dict[str, float], keys: dict[str, str]) -> str:
    """``label value`` for each of ``keys`` (metric → label) present in ``values``."""
    return "  ".join(f"{label} {values[k]:.4g}" for k, label in keys.items() if k in values)


@contextlib.contextmanager
def status_bar(description: str) -> Iterator[Callable[[int, int, str], None]]:
    """A bar with a status text after it (a training run's loss, margin, accuracy); yields
    ``update(completed, total, status)``. Off a terminal it prints the last status at the end."""
    last: list[object] = [0, 0, ""]
    with _task(description, None) as (progress, task):

        def update(completed: int, total: int, status: str) -> None:
            last[:] = [completed, total, status]
            progress.update(task, completed=completed, total=total, status=status)

        yield update
    if not console.is_terminal and _bars[0] and last[0]:
        console.print(f"{description}: {last[0]}/{last[1]} {last[2]}")
