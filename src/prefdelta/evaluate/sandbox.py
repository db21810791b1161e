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
folders are private — except the interpreter's folders, bind-mounted read-only), and
every capability dropped before the program runs (it is not exec'd, so it would keep
those of the user namespace, enough to mount over anything).

``basic`` (neither): rlimits, process group and timeout only; sockets are disabled in
the program's interpreter by replacing the ``socket`` constructors — a guard against
accidents, not a security boundary (``_socket`` or a subprocess gets round it), and the
program runs as the caller's user. Use a container for untrusted code in this mode.

Graded runs (``run_python(..., check=Check(...))``, what HumanEval grading uses): the
verdict comes from a judge the program cannot reach, never from how the program ended.

Threat model. The program is hostile and knows this code: it may exit with any status at
any time (``sys.exit(0)``, ``os._exit(0)``, ``SystemExit`` at import, from ``__del__``,
``atexit`` or a signal handler), print anything, replace any module, builtin or function
of its interpreter (``os.write``, ``__builtins__``, ``sys.modules``, ``check`` itself),
install trace/profile/audit hooks, start threads, fork, exec, scrape its own memory
(``gc.get_objects()``, ``/proc/self/mem``, ``ctypes``) and write to every descriptor
number. A program that runs the tests in its own interpreter can therefore always skip
them and report success: anything an in-process harness can learn or do, the program
can learn or do first (it runs before the tests, and during them, since the tests call
it). So no secret and no test code ever enters the program's process:

- The boot forks into the *program* (isolated, limited, unprivileged, as above) and the
  *judge* (the boot itself: another PID namespace, non-dumpable, so the program cannot
  see, signal, trace or open it). The program runs the candidate's code (HumanEval: the
  prompt and completion, without the tests) and then only answers calls of its entry
  point over two pipes.
- Only after the fork, the judge reads the tests and a per-run random token from a
  ``memfd`` that the host passed and that the program closed before any of its code ran
  (it never read it). The judge runs the tests' ``check(candidate)`` in its own
  interpreter; ``candidate`` is a proxy sending the (copied) arguments to the program
  and decoding its answer with a small pure-Python decoder that builds only plain
  built-in values (no pickle, no user classes, no ``__eq__`` of the program's choosing;
  size and depth bounded). An exception the candidate raised comes back as the built-in
  ``Exception`` of that name; a program that dies, sends garbage or too much fails the
  run even if the tests catch the error.
- When ``check`` returns normally the judge kills the program (its PID namespace dies
  with it) and writes ``<token> passed`` to a verdict pipe the program never held;
  anything else writes ``<token> failed: <why>``. The host passes a run only on exactly
  ``<token> passed``: exit statuses, output, timeouts and signals are failures (a
  timeout is ``timeout``). The program cannot write to the verdict pipe, and could not
  forge the line if it could, without the token it never sees.

- The judge imports the tests' modules (``math``, ``random``…) after the program ran, so
  the program must not be able to replace them: in strict mode it has no capabilities
  and another uid; in userns mode it has no capabilities and the interpreter is
  read-only. The judge's memory is limited like the program's, and one answer to
  ``MAX_MESSAGE_BYTES``.

What this does not cover: a program that computes the right answers (that is passing);
tests that print verdicts themselves (HumanEval's only assert); a candidate mutating its
arguments in place (it gets copies, as if the tests kept their own); return values other
than the plain types above (they fail the run). In basic mode the program runs as the
caller's uid in the caller's PID and mount namespaces: the judge is non-dumpable (not
traceable, its descriptors not openable by the same uid), but the program can reach
whatever that uid can — rewrite a Python it owns (which the judge imports from), or,
where ptrace is unrestricted (Yama ``ptrace_scope`` 0), the grading process itself —
and as root anything. Basic mode is for trusted code or a disposable container.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import marshal
import os
import select
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
MAX_MESSAGE_BYTES = 4 << 20  # one call's arguments or answer between the judge and the program


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
class Check:
    """The tests of a graded run, which only the judge sees (never the program).

    ``test`` defines ``check(candidate)``; the judge calls it with a proxy of the
    program's ``entry_point``. ``helpers``: source whose top-level names the tests may use
    besides their own (HumanEval's prompt: ``poly``, ``encode_cyclic``), run in the judge
    only if they do.
    """

    test: str
    entry_point: str
    helpers: str = ""


@dataclass(frozen=True)
class RunResult:
    """Outcome of one program.

    Plain runs: ``passed`` means exit status 0 within the limits. Graded runs (with a
    :class:`Check`): ``passed`` means the judge saw ``check`` return normally; ``detail``
    says why a run failed.
    """

    status: Status
    returncode: int | None
    stdout: str
    stderr: str
    wall_s: float
    detail: str = ""

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
    try:  # woken by the exit itself (Linux 5.3+), not by polling: no latency per run
        pidfd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        pidfd = None
    if pidfd is not None:
        try:
            waiter = select.poll()
            waiter.register(pidfd, select.POLLIN)
            waiter.poll(max(0.0, timeout) * 1000)
        finally:
            os.close(pidfd)
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
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


def _verdict_token() -> str:
    """A fresh secret per graded run (the tests replace this to prove a known one is useless)."""
    return os.urandom(16).hex()


def _check_payload(check: Check, token: str) -> int:
    """A memfd holding the tests and the token, for the judge to read after the fork."""
    fd = os.memfd_create("prefdelta-check", os.MFD_CLOEXEC)
    data = marshal.dumps(
        {"token": token, "test": check.test, "entry_point": check.entry_point, "helpers": check.helpers}
    )
    while data:
        data = data[os.write(fd, data) :]
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def _read_verdict(fd: int) -> bytes:
    os.set_blocking(fd, False)  # only the judge held the other end, and it is gone
    parts = []
    with contextlib.suppress(BlockingIOError):
        while chunk := os.read(fd, 65536):
            parts.append(chunk)
    return b"".join(parts)


def _graded_status(verdict: bytes, token: str, returncode: int) -> tuple[Status, str]:
    head, _, rest = verdict[4:].decode("utf-8", "replace").partition(" ")
    if head != token or not token:
        return "failed", f"no verdict from the judge (exit status {returncode})"
    if rest == "passed":
        return "passed", ""
    if rest.startswith("set-up failed: "):  # reported before the program ran: not forgeable
        raise SandboxError(f"{_SETUP_MARK}: {rest.removeprefix('set-up failed: ')}")
    return "failed", rest.removeprefix("failed: ")


def run_python(
    source: str, limits: Limits | None = None, mode: Mode | None = None, check: Check | None = None
) -> RunResult:
    """Run ``source`` as a Python program in the sandbox and report how it ended.

    Without ``check`` the program passes when it exits with status 0. With one, the
    program must define ``check.entry_point``, and it passes only when the judge's
    ``check(candidate)`` returns normally (see the module docstring); how the program
    ends does not count.

    Raises :class:`SandboxError` only when the sandbox could not be set up; anything
    the program does (raise, exit non-zero, exceed a limit, get killed) is a result.
    """
    limits = limits or Limits()
    mode = mode or best_mode()
    size = len(source.encode("utf-8", "replace"))
    if mode != "basic" and size > (limits.tmpfs_mb << 20) // 2:  # else set-up fails: the run would abort
        why = f"program of {size} bytes: more than half the sandbox's /tmp"
        return RunResult("failed", None, "", why, 0.0, why)
    uid = _sandbox_uid()
    root = Path(tempfile.mkdtemp(prefix="prefdelta-sbx-"))
    token = payload_fd = verdict_r = verdict_w = None
    try:
        work = root / "work"
        work.mkdir(mode=0o700)
        (work / "prog.py").write_text(source)
        out_path, err_path = root / "stdout", root / "stderr"
        cfg = _boot_config(mode, limits, uid)
        pass_fds: tuple[int, ...] = ()
        if check is not None:
            token = _verdict_token()
            payload_fd = _check_payload(check, token)
            verdict_r, verdict_w = os.pipe()
            pass_fds = (payload_fd, verdict_w)
            cfg["check"] = {
                "entry_point": check.entry_point,
                "payload_fd": payload_fd,
                "verdict_fd": verdict_w,
                "max_message_bytes": MAX_MESSAGE_BYTES,
                "boot_source": BOOT.read_text() if limits.site else "",
            }
        start = time.perf_counter()
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            try:
                proc = subprocess.Popen(
                    [sys.executable, "-I", "-S", str(BOOT), marshal.dumps(cfg).hex()],
                    cwd=work,
                    env=clean_env(str(work)),
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=err,
                    start_new_session=True,
                    close_fds=True,
                    pass_fds=pass_fds,
                )
            finally:  # the boot has its copies; ours would keep the verdict pipe open
                for fd in (payload_fd, verdict_w):
                    if fd is not None:
                        os.close(fd)
            finished = _wait_unreaped(proc.pid, limits.wall_s)
            if not finished:  # the boot kills the program and waits until its namespace is empty
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGTERM)
                _wait_unreaped(proc.pid, KILL_GRACE_S)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            returncode = proc.wait()
        wall = time.perf_counter() - start
        verdict = _read_verdict(verdict_r) if verdict_r is not None else b""
        stdout = _read_capped(out_path, limits.max_output_bytes)
        stderr = _read_capped(err_path, limits.max_output_bytes)
    finally:
        if verdict_r is not None:
            os.close(verdict_r)
        shutil.rmtree(root, ignore_errors=True)
    if returncode == SETUP_FAILED_EXIT and _SETUP_MARK in stderr and not verdict:
        raise SandboxError(stderr.strip().splitlines()[-1])
    detail = ""
    if not finished:
        status: Status = "timeout"
    elif check is None:
        status = "passed" if returncode == 0 else "failed"
    else:
        status, detail = _graded_status(verdict, token or "", returncode)
    return RunResult(status, returncode if finished else None, stdout, stderr, wall, detail)


def run_many(
    sources: Sequence[str],
    limits: Limits | None = None,
    mode: Mode | None = None,
    workers: int = 2,
    on_result: Callable[[int, RunResult], None] | None = None,
    checks: Sequence[Check] | None = None,
) -> list[RunResult]:
    """:func:`run_python` over ``sources`` with ``workers`` concurrent sandboxes (threads);
    ``checks[i]``, when given, grades ``sources[i]``."""
    mode = mode or best_mode()
    if checks is not None and len(checks) != len(sources):
        raise ValueError(f"{len(checks)} checks for {len(sources)} programs")

    def one(i: int) -> RunResult:
        result = run_python(sources[i], limits, mode, None if checks is None else checks[i])
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
