"""Run model-written Python in a separate, limited, isolated process.

Why: pass@k on HumanEval executes whatever the model wrote. A wrong program must be
graded as a failure and nothing else: not hang the run, not fill the disk, not fork the
machine to death, not phone home, not read the caller's secrets, not kill the grader.

Every program runs through :mod:`prefdelta.evaluate.sandbox_boot` in a fresh session
(its own process group) and gets, in every mode:

- ``RLIMIT_CPU`` (``cpu_s``, typically 2–10 s), ``RLIMIT_AS`` (``memory_mb``, 512–4096),
  ``RLIMIT_FSIZE`` (``file_size_mb``, 1–64), ``RLIMIT_NPROC`` (``max_procs``, 4–64),
  ``RLIMIT_NOFILE`` 64, no core dumps;
- a wall-clock timeout (``wall_s``), after which the whole process group is SIGKILLed —
  and the group is SIGKILLed after a normal exit too, so background children die;
- an empty temporary working directory holding only ``prog.py`` (in the namespaced modes
  it lives in the private, ``tmpfs_mb``-limited ``/tmp``, so nothing the program writes
  reaches the host's disk; in basic mode it is a host folder deleted afterwards), stdin
  from ``/dev/null``, stdout/stderr to files capped at ``max_output_bytes``;
- an environment with nothing inherited (``PATH``, ``LANG``, ``HOME`` only) and
  ``python -I -S`` (ignores ``PYTHON*`` variables, the user site and site-packages;
  ``Limits.site`` turns site-packages on). Once isolated and limited, the boot runs the
  program in its own interpreter (``exec`` as ``__main__``; one start-up fewer), so the
  boot's few stdlib modules are loaded — nothing in them is secret.

What else holds depends on the mode, chosen by :func:`best_mode`:

``strict`` (root, e.g. CI containers): new mount/PID/network/IPC/UTS namespaces; the
program is PID 1 of its PID namespace, so every process it leaves behind is killed by
the kernel when it exits, and it cannot see or signal anything outside; the network
namespace has only a downed loopback; fresh tmpfs over ``/tmp``, ``/var/tmp``,
``/dev/shm``; empty tmpfs over ``/root`` and ``/home`` (the interpreter is bind-mounted
back read-only); the program runs as a throw-away unprivileged uid (RLIMIT_NPROC is not
enforced for root, so dropping the uid is what makes it hold).

``userns`` (not root, unprivileged user namespaces allowed): the same namespaces inside a
user namespace, same uid (so files the user can write stay writable: only the scratch
folders are private).

``basic`` (neither): rlimits, process group and timeout only; sockets are disabled in
the program's interpreter by replacing the ``socket`` constructors — a guard against
accidents, not a security boundary (``_socket`` or a subprocess gets round it), and the
program runs as the caller's user. Use a container for untrusted code in this mode.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import marshal
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

Mode = Literal["strict", "userns", "basic"]
Status = Literal["passed", "failed", "timeout"]
BOOT = Path(__file__).with_name("sandbox_boot.py")
SETUP_FAILED_EXIT = 125
KILL_GRACE_S = 5.0  # how long the boot gets to empty the namespace before the group is SIGKILLed
_SETUP_MARK = "prefdelta sandbox: set-up failed"
_uid_counter = itertools.count()


class SandboxError(RuntimeError):
    """The sandbox itself could not be set up (not a failure of the program)."""


@dataclass(frozen=True)
class Limits:
    """Resource limits of one sandboxed run (defaults suit HumanEval-style unit tests)."""

    cpu_s: int = 5
    wall_s: float = 10.0
    memory_mb: int = 1024
    file_size_mb: int = 8
    max_procs: int = 16
    max_output_bytes: int = 65536
    tmpfs_mb: int = 32
    site: bool = False  # import site-packages (numpy…) in the program; off = faster start


@dataclass(frozen=True)
class RunResult:
    """Outcome of one program: ``passed`` means exit status 0 within the limits."""

    status: Status
    returncode: int | None
    stdout: str
    stderr: str
    wall_s: float

    @property
    def passed(self) -> bool:
        return self.status == "passed"


def clean_env(home: str) -> dict[str, str]:
    """The whole environment of a sandboxed program: nothing from the caller's."""
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": home}


def _user_process_count(uid: int) -> int:
    """Processes of ``uid`` now (RLIMIT_NPROC counts them all, not only the sandbox's)."""
    n = 0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}").st_uid == uid:
                    n += 1
            except OSError:
                continue
    return n


def _sandbox_uid(base: int = 200000, span: int = 50000) -> int:
    """A throw-away uid per run, so concurrent runs do not share an RLIMIT_NPROC budget."""
    return base + (os.getpid() * 7919 + next(_uid_counter)) % span


def _boot_config(mode: Mode, limits: Limits, uid: int) -> dict[str, object]:
    nproc = limits.max_procs
    if mode != "strict":  # same uid as the caller: its existing processes count too
        nproc += _user_process_count(os.getuid())
    keep = sorted({os.path.realpath(sys.base_prefix), os.path.realpath(sys.prefix)})
    return {
        **asdict(limits),
        "mode": mode,
        "uid": uid,
        "gid": uid,
        "nproc": nproc,
        "python": os.path.realpath(sys.executable) if not limits.site else sys.executable,
        "scratch": ["/tmp", "/var/tmp", "/dev/shm"],
        "hide": ["/root", "/home"] if mode == "strict" else [],
        "keep": keep,
    }


def _wait_unreaped(pid: int, timeout: float) -> bool:
    """Wait for ``pid`` to exit *without reaping it*; False on timeout.

    Not reaping keeps the pid (and so the process-group id) reserved until we have
    SIGKILLed the group: killing a recycled group id could hit an unrelated process.
    """
    deadline = time.monotonic() + timeout
    delay = 0.0005
    while True:
        info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        if info is not None:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(delay)
        delay = min(delay * 2, 0.01)


def _read_capped(path: Path, cap: int) -> str:
    with open(path, "rb") as f:
        return f.read(cap).decode("utf-8", errors="replace")


def run_python(source: str, limits: Limits | None = None, mode: Mode | None = None) -> RunResult:
    """Run ``source`` as a Python program in the sandbox and report how it ended.

    Raises :class:`SandboxError` only when the sandbox could not be set up; anything
    the program does (raise, exit non-zero, exceed a limit, get killed) is a result.
    """
    limits = limits or Limits()
    mode = mode or best_mode()
    uid = _sandbox_uid()
    root = Path(tempfile.mkdtemp(prefix="prefdelta-sbx-"))
    try:
        work = root / "work"
        work.mkdir(mode=0o700)
        (work / "prog.py").write_text(source)
        out_path, err_path = root / "stdout", root / "stderr"
        cfg = _boot_config(mode, limits, uid)
        start = time.perf_counter()
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            proc = subprocess.Popen(
                [sys.executable, "-I", "-S", str(BOOT), marshal.dumps(cfg).hex()],
                cwd=work,
                env=clean_env(str(work)),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
                close_fds=True,
            )
            finished = _wait_unreaped(proc.pid, limits.wall_s)
            if not finished:  # the boot kills the program and waits until its namespace is empty
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGTERM)
                _wait_unreaped(proc.pid, KILL_GRACE_S)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            returncode = proc.wait()
        wall = time.perf_counter() - start
        stdout = _read_capped(out_path, limits.max_output_bytes)
        stderr = _read_capped(err_path, limits.max_output_bytes)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    if returncode == SETUP_FAILED_EXIT and _SETUP_MARK in stderr:
        raise SandboxError(stderr.strip().splitlines()[-1])
    status: Status = "timeout" if not finished else ("passed" if returncode == 0 else "failed")
    return RunResult(status, returncode if finished else None, stdout, stderr, wall)


def run_many(
    sources: Sequence[str],
    limits: Limits | None = None,
    mode: Mode | None = None,
    workers: int = 2,
    on_result: Callable[[int, RunResult], None] | None = None,
) -> list[RunResult]:
    """:func:`run_python` over ``sources`` with ``workers`` concurrent sandboxes (threads)."""
    mode = mode or best_mode()

    def one(i: int) -> RunResult:
        result = run_python(sources[i], limits, mode)
        if on_result is not None:
            on_result(i, result)
        return result

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        return list(pool.map(one, range(len(sources))))


@functools.cache
def best_mode() -> Mode:
    """The strongest mode that works on this machine (probed once per process)."""
    candidates: list[Mode] = ["strict", "userns", "basic"] if os.geteuid() == 0 else ["userns", "basic"]
    probe = (
        "import socket\ntry:\n    socket.create_connection(('127.0.0.1', 9), 1)\nexcept OSError:\n    pass\n"
    )
    for mode in candidates:
        try:
            if run_python(probe, Limits(wall_s=20), mode).passed:
                return mode
        except SandboxError:
            continue
    return "basic"


def describe(mode: Mode | None = None) -> str:
    """One line on what the sandbox isolates here (for logs and ``prefdelta eval sandbox``)."""
    mode = mode or best_mode()
    return {
        "strict": "strict: namespaces (mount, pid, net, ipc, uts), private /tmp, hidden homes, "
        "throw-away uid, rlimits, process-group kill",
        "userns": "userns: namespaces (user, mount, pid, net, ipc, uts), private /tmp, caller's uid, "
        "rlimits, process-group kill",
        "basic": "basic: rlimits, process-group kill, sockets disabled in-process only "
        "(NOT a security boundary)",
    }[mode]
