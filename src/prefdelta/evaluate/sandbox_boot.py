"""Child side of the code sandbox: isolate this process, then exec the untrusted program.

Run by :mod:`prefdelta.evaluate.sandbox` as ``python -I -S sandbox_boot.py <config>``
in a fresh session (its own process group), an empty working directory and a scrubbed
environment. Only the standard library is imported: this file runs before anything the
user's code can touch, and fast start-up matters (one boot per graded sample).

Strict mode (root): unshare mount, PID, network, IPC and UTS namespaces; fork so the
program is PID 1 of the new PID namespace (when it exits the kernel kills every
process left inside); mount a private ``/proc``, fresh small tmpfs over the world-
writable scratch folders, and empty tmpfs over home folders (the interpreter is bind-
mounted back when it lives there); set rlimits; drop to an unprivileged uid (so that
RLIMIT_NPROC holds and files outside the working directory are not writable); exec.

User-namespace mode (not root, user namespaces allowed): the same namespaces inside a
new user namespace, without the uid drop. Basic mode: rlimits only, and the socket
module disabled inside the program's interpreter (best effort, see docs/evaluation.md).
"""

from __future__ import annotations

import _signal  # the C module: `signal` imports enum (start-up time)
import marshal
import os
import resource
import sys

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 4096
MS_MOVE = 8192
MS_REC = 16384
MS_PRIVATE = 1 << 18
WORKDIR = "/tmp/work"  # where the program sees its working directory (namespaced modes)

# Executed (as ``-c``) in basic mode only: no network namespace, so refuse sockets in-process.
SOCKET_GUARD = """
import socket as _s, sys as _y, runpy as _r
def _deny(*a, **k):
    raise OSError(101, "network is disabled in the prefdelta sandbox")
for _n in ("socket", "create_connection", "create_server", "socketpair", "fromfd", "getaddrinfo"):
    setattr(_s, _n, _deny)
_y.argv = _y.argv[1:]
_r.run_path(_y.argv[0], run_name="__main__")
"""


def _libc():  # ctypes only in the namespaced modes: importing it costs ~10 ms a run
    import ctypes

    return ctypes, ctypes.CDLL(None, use_errno=True)


def _check(ctypes, ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _unshare(flags: int) -> None:
    ctypes, libc = _libc()
    _check(ctypes, libc.unshare(ctypes.c_int(flags)), "unshare")


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    ctypes, libc = _libc()
    enc = [None if s is None else s.encode() for s in (source, target, fstype, data)]
    _check(ctypes, libc.mount(enc[0], enc[1], enc[2], ctypes.c_ulong(flags), enc[3]), f"mount {target}")


def _under(path: str, folder: str) -> bool:
    return os.path.commonpath([path, folder]) == folder


def _isolate_filesystem(cfg: dict) -> None:
    """Private mounts: new /proc, fresh scratch tmpfs, home folders hidden (interpreter kept)."""
    with open("prog.py", "rb") as f:  # from the host's temporary folder, before /tmp is covered
        source = f.read()
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    # On failure /proc of the parent namespace stays; other uids' files there are unreadable.
    try:  # noqa: SIM105 (contextlib costs start-up time, paid on every run)
        _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    except OSError:
        pass
    for i, folder in enumerate(cfg["hide"]):
        if not os.path.isdir(folder):
            continue
        keep = [k for k in cfg["keep"] if _under(k, folder) and os.path.isdir(k)]
        staged = []
        for j, k in enumerate(keep):
            stage = f".keep{i}-{j}"  # in the host's temporary folder (the cwd); removed below
            os.mkdir(stage)
            _mount(k, stage, None, MS_BIND | MS_REC)
            staged.append((stage, k))
        _mount("tmpfs", folder, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=0755")
        for stage, k in staged:
            os.makedirs(k, exist_ok=True)
            _mount(stage, k, None, MS_MOVE)
            os.rmdir(stage)
            # Read-only is a second line: the dropped uid cannot write there anyway.
            try:  # noqa: SIM105
                _mount(None, k, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID)
            except OSError:
                pass
    size = f"size={int(cfg['tmpfs_mb'])}m"
    for folder in cfg["scratch"]:
        if os.path.isdir(folder):
            _mount("tmpfs", folder, "tmpfs", MS_NOSUID | MS_NODEV, f"{size},mode=1777")
    # The program's working directory lives in the private, size-limited /tmp: nothing
    # it writes reaches the host's disk, and it vanishes with the namespace.
    os.makedirs(WORKDIR, mode=0o700)
    with open(os.path.join(WORKDIR, "prog.py"), "wb") as f:
        f.write(source)
    if cfg["mode"] == "strict":
        os.chown(WORKDIR, cfg["uid"], cfg["gid"])
        os.chown(os.path.join(WORKDIR, "prog.py"), cfg["uid"], cfg["gid"])
    os.chdir(WORKDIR)
    os.environ["HOME"] = WORKDIR


def _set_limits(cfg: dict) -> None:
    mb = 1 << 20
    for which, soft, hard in (
        (resource.RLIMIT_CPU, cfg["cpu_s"], cfg["cpu_s"] + 1),
        (resource.RLIMIT_AS, cfg["memory_mb"] * mb, cfg["memory_mb"] * mb),
        (resource.RLIMIT_FSIZE, cfg["file_size_mb"] * mb, cfg["file_size_mb"] * mb),
        (resource.RLIMIT_NPROC, cfg["nproc"], cfg["nproc"]),
        (resource.RLIMIT_NOFILE, 64, 64),
        (resource.RLIMIT_CORE, 0, 0),
    ):
        resource.setrlimit(which, (soft, hard))


def _map_user() -> None:
    """Inside a fresh user namespace: map our own uid/gid to themselves."""
    uid, gid = os.getuid(), os.getgid()
    _unshare(CLONE_NEWUSER)
    with open("/proc/self/setgroups", "w") as f:
        f.write("deny")
    with open("/proc/self/uid_map", "w") as f:
        f.write(f"{uid} {uid} 1")
    with open("/proc/self/gid_map", "w") as f:
        f.write(f"{gid} {gid} 1")


def _disable_sockets() -> None:
    """Basic mode only (no network namespace): refuse sockets in this interpreter."""
    import socket

    def deny(*_args: object, **_kwargs: object) -> None:
        raise OSError(101, "network is disabled in the prefdelta sandbox")

    for name in ("socket", "create_connection", "create_server", "socketpair", "fromfd", "getaddrinfo"):
        setattr(socket, name, deny)


def _run_program(cfg: dict) -> None:
    """Run ``prog.py`` as ``__main__`` and exit with its status, like ``python prog.py``.

    In this interpreter (one start-up fewer; ``runpy`` and interpreter teardown are
    skipped too, they cost more than the typical test), or, when the program needs
    site-packages, in a fresh interpreter exec'd in our place.
    """
    if cfg["site"]:
        argv = [cfg["python"], "-I"] + (["-c", SOCKET_GUARD] if cfg["mode"] == "basic" else []) + ["prog.py"]
        os.execve(cfg["python"], argv, dict(os.environ))
    if cfg["mode"] == "basic":
        _disable_sockets()
    with open("prog.py", "rb") as f:
        source = f.read()
    main = type(sys)("__main__")
    main.__file__ = "prog.py"
    sys.modules["__main__"] = main
    sys.argv = ["prog.py"]
    status = 0
    try:
        exec(compile(source, "prog.py", "exec"), main.__dict__)
    except SystemExit as stop:
        code = stop.code
        if code is None or isinstance(code, int):
            status = code or 0
        else:
            print(code, file=sys.stderr)
            status = 1
    except BaseException:
        sys.excepthook(*sys.exc_info())
        status = 1
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # closed or full: the output is lost, the status is not
            status = status or 120
    os._exit(status & 0xFF)


def _child(cfg: dict) -> None:
    """PID 1 of the new namespaces (or the only process, in basic mode).

    Set-up errors exit 125 with a marked line on stderr; the program's own exceptions
    propagate like in ``python prog.py`` (traceback, exit status 1).
    """
    try:
        if cfg["mode"] != "basic":
            _isolate_filesystem(cfg)
        _set_limits(cfg)
        if cfg["mode"] == "strict":
            os.setgroups([])
            os.setgid(cfg["gid"])
            os.setuid(cfg["uid"])
    except BaseException as err:  # the parent reads this from stderr
        sys.stderr.write(f"prefdelta sandbox: set-up failed: {err!r}\n")
        sys.stderr.flush()
        os._exit(125)
    _run_program(cfg)


def main() -> None:
    cfg = marshal.loads(bytes.fromhex(sys.argv[1]))  # marshal: built in, unlike json (re)
    if cfg["mode"] == "basic":
        _child(cfg)
    try:
        if cfg["mode"] == "userns":
            _map_user()
        _unshare(CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS)
    except OSError as err:
        sys.stderr.write(f"prefdelta sandbox: set-up failed: {err!r}\n")
        os._exit(125)
    pid = os.fork()
    if pid == 0:
        _child(cfg)
    # SIGTERM from the grader (wall-clock timeout): kill the program, then keep waiting.
    # When PID 1 of a namespace exits, the kernel kills and reaps every process left in
    # it before PID 1's exit completes, so once waitpid returns the namespace is empty.
    _signal.signal(_signal.SIGTERM, lambda *_: os.kill(pid, _signal.SIGKILL))
    _, status = os.waitpid(pid, 0)
    os._exit(os.WEXITSTATUS(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status))


if __name__ == "__main__":
    main()
