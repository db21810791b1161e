"""How the command line sets up logging: one level switch, log lines through the progress console.

Library code logs through ``logging.getLogger(__name__)`` and configures nothing (the
package adds a ``NullHandler``): a program importing prefdelta decides what it sees.
The CLI calls :func:`configured` once per invocation. It writes every record through
:data:`prefdelta.progress.console` (stderr), the console the progress bars draw on, so
that a log line printed while a bar is live lands above the bar instead of cutting it.

Level: ``--verbose/-v`` (DEBUG for prefdelta), ``--quiet/-q`` (WARNING, and no progress
bars), else ``$PREFDELTA_LOG_LEVEL`` (debug, info, warning, error), else INFO. Other
libraries' loggers stay at WARNING whatever the switch, so ``-v`` shows prefdelta's
debug lines, not every HTTP request of a client library.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator

from prefdelta import progress
from prefdelta.errors import UserError

PACKAGE = "prefdelta"
LEVEL_ENV = "PREFDELTA_LOG_LEVEL"
LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}
VERBOSE = ("--verbose", "-v")
QUIET = ("--quiet", "-q")
_STYLES = {logging.DEBUG: "dim", logging.WARNING: "yellow", logging.ERROR: "bold red"}

_active_level: int | None = None


class ConsoleFormatter(logging.Formatter):
    """The message as stage code wrote it; other levels than INFO say theirs
    (``warning: …``), and other libraries' records name their logger."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        if not (record.name == PACKAGE or record.name.startswith(PACKAGE + ".")):
            text = f"{record.name}: {text}"
        if record.levelno != logging.INFO:
            text = f"{record.levelname.lower()}: {text}"
        return text


class ConsoleHandler(logging.Handler):
    """Writes records through the progress console (looked up at each record, so a
    console swapped in later, or a redirected ``sys.stderr``, is the one used). A record
    logged with ``extra={"style": …}`` is printed in that rich style (a skipped stage dim)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            progress.console.print(
                self.format(record),
                markup=False,
                highlight=False,
                soft_wrap=True,  # one record, one line: a piped log stays greppable
                style=getattr(record, "style", None) or _STYLES.get(record.levelno),
            )
        except Exception:  # logging's contract: a failing handler must not raise
            self.handleError(record)


def split_switches(args: list[str]) -> tuple[list[str], bool, bool]:
    """``args`` without the global ``--verbose/-v`` and ``--quiet/-q``, wherever they
    stand, and whether each was given."""
    verbose = any(a in VERBOSE for a in args)
    quiet = any(a in QUIET for a in args)
    return [a for a in args if a not in VERBOSE + QUIET], verbose, quiet


def resolve_level(verbose: bool, quiet: bool) -> int:
    """The level for prefdelta's loggers: the switches, else the environment, else INFO."""
    if verbose and quiet:
        raise UserError("give --verbose/-v or --quiet/-q, not both")
    if verbose:
        return logging.DEBUG
    if quiet:
        return logging.WARNING
    name = os.environ.get(LEVEL_ENV, "").strip().lower()
    if not name:
        return logging.INFO
    if name not in LEVELS:
        raise UserError(f"{LEVEL_ENV}: expected one of {', '.join(LEVELS)}; got {name!r}")
    return LEVELS[name]


def active_level() -> int | None:
    """The level :func:`configured` set in this process, or ``None`` outside it; worker
    processes get it through :func:`configure_worker`."""
    return _active_level


def configure_worker(level: int | None) -> None:
    """Initializer of a spawned worker process: the parent's CLI logging, if any (a
    spawned process starts with logging unconfigured, and would drop its stage lines)."""
    global _active_level
    if level is None:
        return
    _install(level)
    _active_level = level


def _install(level: int) -> ConsoleHandler:
    handler = ConsoleHandler()
    handler.setFormatter(ConsoleFormatter())
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, ConsoleHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    logging.getLogger(PACKAGE).setLevel(level)
    progress.set_bars(level <= logging.INFO)
    return handler


@contextlib.contextmanager
def configured(level: int) -> Iterator[None]:
    """Log prefdelta at ``level`` (and others at their own, WARNING by default) to stderr
    for the body; afterwards the logging set-up is what it was, so that calling the CLI's
    ``main`` from Python (tests, notebooks) leaves no handler behind."""
    global _active_level
    package = logging.getLogger(PACKAGE)
    before = (package.level, progress.bars_shown(), _active_level)
    handler = _install(level)
    _active_level = level
    try:
        yield
    finally:
        logging.getLogger().removeHandler(handler)
        package.setLevel(before[0])
        progress.set_bars(before[1])
        _active_level = before[2]
