"""The ``prefdelta`` command line: one subcommand per stage, plus ``demo`` and ``run``.

User errors (bad config, missing table, bad input file) and disk errors (full,
read-only, not permitted, a path under a regular file) print one line and exit with
code 2; ``--debug`` shows the traceback instead. ``--verbose/-v`` and ``--quiet/-q``
set the log level (:mod:`prefdelta.logs`). Like ``--debug`` they are taken out of the
command line wherever they stand, so ``prefdelta -q run …`` and ``prefdelta run … -q``
both work. Results (tables, paths, plans) go to stdout; progress and diagnostics to
stderr.
"""

from __future__ import annotations

import importlib
import os
import sys

import click
import typer

from prefdelta import logs
from prefdelta.cli.common import stage_app
from prefdelta.cli.models import register as register_models
from prefdelta.cli.study import register as register_study
from prefdelta.cli.workspace_cmds import register as register_workspace
from prefdelta.errors import UserError, disk_error
from prefdelta.study.stages import STAGES

app = typer.Typer(
    name="prefdelta",
    help=(
        "What does a preference pair actually teach? Build, judge, select, train and evaluate.\n\n"
        "Anywhere on the command line: --verbose/-v (debug lines), --quiet/-q (warnings and errors "
        "only, no progress bars), --debug (tracebacks). Log level also from PREFDELTA_LOG_LEVEL "
        "(debug, info, warning, error). Results go to stdout, progress and messages to stderr."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

for _stage in STAGES:
    # A stage's own options and extra subcommands (e.g. `judge audit`, `pairs stats`,
    # `eval compare`) live in prefdelta/cli/<stage>_cmds.py: `build_app(help)` when the
    # bare command takes more options than the common ones, `register(sub_app)` for
    # subcommands.
    try:
        _module = importlib.import_module(f"prefdelta.cli.{_stage.name}_cmds")
    except ModuleNotFoundError as _err:
        if _err.name != f"prefdelta.cli.{_stage.name}_cmds":
            raise
        _sub = stage_app(_stage.name, _stage.help)
    else:
        _sub = (
            _module.build_app(_stage.help)
            if hasattr(_module, "build_app")
            else stage_app(_stage.name, _stage.help)
        )
        if hasattr(_module, "register"):
            _module.register(_sub)
    app.add_typer(_sub, name=_stage.name)
register_study(app)
register_models(app)
register_workspace(app)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app, turning user errors into one line and exit code 2."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or os.environ.get("PREFDELTA_DEBUG") == "1"
    args, verbose, quiet = logs.split_switches([a for a in args if a != "--debug"])
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
    except ImportError:  # pragma: no cover
        pass
    try:
        with logs.configured(logs.resolve_level(verbose, quiet)):
            app(args=args, prog_name="prefdelta", standalone_mode=False)
    except UserError as err:
        if debug:
            raise
        typer.echo(f"error: {err}", err=True)
        sys.exit(2)
    except click.exceptions.Abort:
        typer.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as err:
        err.show()
        sys.exit(err.exit_code)
    except click.exceptions.Exit as err:
        sys.exit(err.exit_code)
    except Exception as err:
        # a full or read-only disk, or a path under a regular file, met by a write outside
        # the project's write layer (a library's own files, a worker process): one line too
        disk = disk_error(err)
        if disk is None or debug:
            raise
        typer.echo(f"error: {disk}", err=True)
        sys.exit(2)
