"""Errors a user can act on.

A :class:`UserError` is caught by the CLI and printed as one line with exit code 2
(no traceback unless ``--debug``). Raise it for bad input, bad config, missing
files — anything the user can fix — and say what was expected and where.

A write that fails because of the disk or the path — full (ENOSPC, EDQUOT), read-only
(EROFS), not permitted (EACCES, EPERM) or under a regular file (ENOTDIR, EEXIST) — is
also something only the user can fix, wherever in the project it happens. The write
layer turns it into a :class:`DiskError` with :func:`disk_error`, and the CLI does the
same for one raised anywhere else (a library's own write, a worker process), so every
command ends on the same one line: what failed, where, and what to do.
"""

from __future__ import annotations

import errno
import os
import re
from pathlib import Path


class UserError(Exception):
    """A problem with the user's input, config or environment, with an actionable message."""


class MissingDependency(UserError):
    """An optional extra is needed for the requested feature."""

    def __init__(self, package: str, extra: str, feature: str) -> None:
        super().__init__(f"{feature} needs the '{package}' package: pip install 'prefdelta[{extra}]'")


class DiskError(UserError):
    """A write failed because the disk is full or read-only, or the path cannot be a folder."""


_FULL = "free space there (or pass another --workspace) and re-run: finished work is kept"
_HINTS: dict[int, tuple[str, str]] = {
    errno.ENOSPC: ("no space left on the device", _FULL),
    errno.EDQUOT: ("disk quota exceeded", _FULL),
    errno.EROFS: ("the file system is read-only", "remount it writable or pass another --workspace"),
    errno.EACCES: ("permission denied", "make the folder writable for this user or pass another --workspace"),
    errno.EPERM: (
        "operation not permitted",
        "make the folder writable for this user or pass another --workspace",
    ),
    errno.ENOTDIR: ("a part of the path is a regular file, not a folder", "pass a path under a folder"),
    errno.EEXIST: ("a regular file is in the way of a folder", "move the file away or pass another path"),
}
DISK_ERRNOS = frozenset(_HINTS)
# Libraries that write through their own I/O layer (safetensors, torch's zip writer) raise
# their own exception types; the OS error survives only in the message. Only the errors
# such a library can meet half-way through a write are read from text (a bare "code 1"
# in some message must not pass for EPERM).
_TEXT_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS)
_ERRNO_IN_TEXT = re.compile(r"(?:os error|errno|code:)\s*(\d+)", re.IGNORECASE)
_STRERRORS = {os.strerror(code).lower(): code for code in _TEXT_ERRNOS} | {
    "database or disk is full": errno.ENOSPC,  # sqlite3 (the judge's reply cache)
    "attempt to write a readonly database": errno.EROFS,
}


def errno_of(err: BaseException) -> int | None:
    """The OS error number behind ``err`` (an ``OSError``, or one quoted in a library's message)."""
    for e in (err, err.__cause__, err.__context__):
        if isinstance(e, OSError) and e.errno is not None:
            return e.errno
    text = str(err)
    m = _ERRNO_IN_TEXT.search(text)
    if m and int(m.group(1)) in _TEXT_ERRNOS:
        return int(m.group(1))
    lowered = text.lower()
    return next((code for s, code in _STRERRORS.items() if s in lowered), None)


def _blocking_file(path: Path) -> Path | None:
    """The first part of ``path`` that exists and is not a folder (what makes it impossible)."""
    for parent in [*reversed(path.parents), path]:
        if parent.exists() and not parent.is_dir():
            return parent
        if not parent.exists():
            return None
    return None


def disk_error(err: BaseException, path: str | Path | None = None, doing: str = "write") -> DiskError | None:
    """``err`` as a one-line :class:`DiskError` when the disk or the path caused it, else ``None``.

    ``path``: what was being written (else the error's own file name); ``doing``: the
    verb of the message (``write``, ``create the folder``, ``save the model``).
    """
    if isinstance(err, DiskError):
        return err
    code = errno_of(err)
    if code not in _HINTS:
        return None
    where = path if path is not None else getattr(err, "filename", None)
    what, hint = _HINTS[code]
    if code in (errno.ENOTDIR, errno.EEXIST) and where is not None:
        blocker = _blocking_file(Path(where))
        if blocker is not None:
            what = f"{blocker} is a regular file, not a folder"
    place = f" {where}" if where is not None else ""
    return DiskError(f"cannot {doing}{place}: {what}; {hint}")
