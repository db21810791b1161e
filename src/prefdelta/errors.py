"""Errors a user can act on.

A :class:`UserError` is caught by the CLI and printed as one line with exit code 2
(no traceback unless ``--debug``). Raise it for bad input, bad config, missing
files — anything the user can fix — and say what was expected and where.
"""

from __future__ import annotations


class UserError(Exception):
    """A problem with the user's input, config or environment, with an actionable message."""


class MissingDependency(UserError):
    """An optional extra is needed for the requested feature."""

    def __init__(self, package: str, extra: str, feature: str) -> None:
        super().__init__(f"{feature} needs the '{package}' package: pip install 'prefdelta[{extra}]'")
