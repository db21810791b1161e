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
new user namespace, without the uid drop; instead the interpreter's folders are made
read-only and every capability is dropped (the program is not exec'd, so it would keep
those of the new user namespace, enough to mount over anything). Basic mode: rlimits only, and the socket
module disabled inside the program's interpreter (best effort, see docs/evaluation.md).

Graded mode (the config has a ``check`` entry; HumanEval grading) splits the work in two
processes, and only one of them is trusted. This process forks (after the namespaces
are made, before anything reads the secret) into:

- the *program* (the child; isolated, limited, unprivileged as above): runs the
  candidate's code, then serves calls of its entry point over two pipes (arguments in,
  return values out). Nothing in this process is trusted, the serving code included:
  the candidate can replace any of it. All it can do to the verdict is send bytes.
- the *judge* (this process, which the program cannot see, signal or trace: other PID
  namespace, non-dumpable): only after the fork it reads the tests and a per-run token
  from a file descriptor the program closed before any of its code ran, runs the
  tests' ``check(candidate)`` in its own interpreter with ``candidate`` a proxy that
  sends the arguments to the program and decodes the answer with a small pure-Python
  decoder that builds only plain values (None, bool, int, float, complex, str, bytes,
  tuple, list, dict, set, frozenset, range, an iterator over a list), then kills the
  program and writes ``<token> passed`` or ``<token> failed: <why>`` to the verdict
  pipe, which the program never held either. See :mod:`prefdelta.evaluate.sandbox`
  for the threat model.
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
PR_SET_DUMPABLE = 4
PR_SET_NO_NEW_PRIVS = 38
MAX_DEPTH = 100  # nesting of a value sent between the judge and the program
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


def _cover(folder: str, options: str, keep: list, tag: str) -> None:
    """A fresh tmpfs over ``folder``, with the ``keep`` folders under it bound back read-only."""
    if not os.path.isdir(folder):
        return
    inside = [k for k in keep if _under(k, folder) and os.path.isdir(k)]
    staged = []
    for j, k in enumerate(inside):
        stage = f".keep{tag}-{j}"  # in the host's temporary folder (the cwd); removed below
        os.mkdir(stage)
        _mount(k, stage, None, MS_BIND | MS_REC)
        staged.append((stage, k))
    _mount("tmpfs", folder, "tmpfs", MS_NOSUID | MS_NODEV, options)
    for stage, k in staged:
        os.makedirs(k, exist_ok=True)
        _mount(stage, k, None, MS_MOVE)
        os.rmdir(stage)
        # Read-only is a second line: the dropped uid cannot write there anyway.
        try:  # noqa: SIM105
            _mount(None, k, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID)
        except OSError:
            pass


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
        _cover(folder, "size=1m,mode=0755", cfg["keep"], f"h{i}")
    if cfg["mode"] == "userns":
        # Same uid as the caller: its interpreter may be its own files (pyenv, uv, conda).
        # Read-only here, so the program cannot rewrite the modules the judge imports later
        # (nor trojan the caller's Python); the capabilities that could undo it go below.
        for k in cfg["keep"]:
            if os.path.isdir(k):
                _mount(k, k, None, MS_BIND | MS_REC)
                _mount(None, k, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID)
    size = f"size={int(cfg['tmpfs_mb'])}m"
    for i, folder in enumerate(cfg["scratch"]):
        # an interpreter or virtual environment under /tmp (a clone in a temporary folder)
        # is bound back read-only over the fresh tmpfs, as under the hidden home folders
        _cover(folder, f"{size},mode=1777", cfg["keep"], f"s{i}")
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


def _drop_capabilities() -> None:
    """User-namespace mode: the program would keep every capability of its namespace (it
    is not exec'd), e.g. to mount over the files the judge imports. Drop them all, for
    good, and forbid gaining any back through exec."""
    ctypes, libc = _libc()
    header = (ctypes.c_uint32 * 2)(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this thread
    data = (ctypes.c_uint32 * 6)()  # effective, permitted, inheritable: all empty
    _check(ctypes, libc.capset(header, data), "capset")
    _check(ctypes, libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl")


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


# --- graded mode: the program's side (untrusted: it serves calls, it decides nothing) ---


def _send(fd: int, payload: bytes) -> None:
    data = len(payload).to_bytes(4, "big") + payload
    while data:
        data = data[os.write(fd, data) :]


def _recv_exact(fd: int, n: int) -> bytes | None:
    parts = []
    while n:
        chunk = os.read(fd, min(n, 1 << 20))
        if not chunk:
            return None
        parts.append(chunk)
        n -= len(chunk)
    return b"".join(parts)


def _recv(fd: int, cap: int) -> bytes | None:
    """One length-prefixed frame; None at end of file; ValueError over ``cap`` bytes."""
    head = _recv_exact(fd, 4)
    if head is None:
        return None
    n = int.from_bytes(head, "big")
    if n > cap:
        raise ValueError(f"a message of {n} bytes (more than {cap})")
    return _recv_exact(fd, n)


def _enc_float(v: float, out: bytearray) -> None:
    text = float.hex(v).encode()
    out += len(text).to_bytes(1, "big") + text


def _enc_items(tag: bytes, items, out: bytearray, depth: int) -> None:
    items = list(items)
    out += tag + len(items).to_bytes(4, "big")
    for item in items:
        _enc(item, out, depth + 1)


def _enc(v: object, out: bytearray, depth: int = 0) -> None:
    """Plain values to bytes (subclasses as their base type; iterators as iterators)."""
    if depth > MAX_DEPTH:
        raise ValueError("value nested too deeply")
    t = type(v)
    if v is None:
        out += b"N"
    elif t is bool:
        out += b"T" if v else b"F"
    elif isinstance(v, int):
        v = int.__int__(v)
        raw = v.to_bytes((v.bit_length() + 8) // 8, "big", signed=True)
        out += b"i" + len(raw).to_bytes(4, "big") + raw
    elif isinstance(v, float):
        out += b"f"
        _enc_float(float.__float__(v), out)
    elif isinstance(v, complex):
        out += b"c"
        _enc_float(v.real, out)
        _enc_float(v.imag, out)
    elif isinstance(v, str):
        raw = str.__str__(v).encode("utf-8", "surrogatepass")
        out += b"s" + len(raw).to_bytes(4, "big") + raw
    elif isinstance(v, (bytes, bytearray)):
        raw = bytes(v)
        out += (b"b" if isinstance(v, bytes) else b"B") + len(raw).to_bytes(4, "big") + raw
    elif isinstance(v, tuple):
        _enc_items(b"t", v, out, depth)
    elif isinstance(v, list):
        _enc_items(b"l", v, out, depth)
    elif isinstance(v, dict):
        pairs = list(v.items())
        out += b"d" + len(pairs).to_bytes(4, "big")
        for key, value in pairs:
            _enc(key, out, depth + 1)
            _enc(value, out, depth + 1)
    elif isinstance(v, frozenset):
        _enc_items(b"Z", v, out, depth)
    elif isinstance(v, set):
        _enc_items(b"S", v, out, depth)
    elif isinstance(v, range):
        out += b"r"
        for x in (v.start, v.stop, v.step):
            _enc(x, out, depth + 1)
    elif hasattr(t, "__next__") and hasattr(t, "__iter__"):  # generator, map, filter…
        _enc_items(b"I", v, out, depth)
    else:
        raise TypeError(f"cannot send a {t.__name__} between the program and the tests")


def encode(value: object) -> bytes:
    out = bytearray()
    _enc(value, out)
    return bytes(out)


def _dec_len(data: bytes, pos: int, size: int) -> tuple[int, int]:
    if pos + size > len(data):
        raise ValueError("truncated value")
    return int.from_bytes(data[pos : pos + size], "big"), pos + size


def _dec_float(data: bytes, pos: int) -> tuple[float, int]:
    n, pos = _dec_len(data, pos, 1)
    if pos + n > len(data):
        raise ValueError("truncated value")
    return float.fromhex(data[pos : pos + n].decode("ascii")), pos + n


def _dec(data: bytes, pos: int, depth: int) -> tuple[object, int]:
    """The judge's decoder: builds only plain built-in values, or raises ValueError."""
    if depth > MAX_DEPTH:
        raise ValueError("value nested too deeply")
    if pos >= len(data):
        raise ValueError("truncated value")
    tag = data[pos : pos + 1]
    pos += 1
    if tag == b"N":
        return None, pos
    if tag == b"T":
        return True, pos
    if tag == b"F":
        return False, pos
    if tag in (b"i", b"s", b"b", b"B"):
        n, pos = _dec_len(data, pos, 4)
        if pos + n > len(data):
            raise ValueError("truncated value")
        raw = data[pos : pos + n]
        if tag == b"i":
            return int.from_bytes(raw, "big", signed=True), pos + n
        if tag == b"s":
            return raw.decode("utf-8", "surrogatepass"), pos + n
        return (bytes(raw) if tag == b"b" else bytearray(raw)), pos + n
    if tag == b"f":
        return _dec_float(data, pos)
    if tag == b"c":
        real, pos = _dec_float(data, pos)
        imag, pos = _dec_float(data, pos)
        return complex(real, imag), pos
    if tag == b"r":
        bounds = []
        for _ in range(3):
            x, pos = _dec(data, pos, depth + 1)
            if type(x) is not int:
                raise ValueError("bad range")
            bounds.append(x)
        return range(*bounds), pos
    if tag in (b"t", b"l", b"S", b"Z", b"I", b"d"):
        n, pos = _dec_len(data, pos, 4)
        items = []
        for _ in range(n * 2 if tag == b"d" else n):  # each item takes a byte at least: bounded
            item, pos = _dec(data, pos, depth + 1)
            items.append(item)
        try:
            if tag == b"t":
                return tuple(items), pos
            if tag == b"l":
                return items, pos
            if tag == b"S":
                return set(items), pos
            if tag == b"Z":
                return frozenset(items), pos
            if tag == b"I":
                return iter(items), pos
            return dict(zip(items[::2], items[1::2], strict=True)), pos
        except TypeError as err:  # an unhashable key: values are plain, so no user code ran
            raise ValueError(str(err)) from None
    raise ValueError(f"unknown tag {tag!r}")


def decode(data: bytes) -> object:
    value, pos = _dec(data, 0, 0)
    if pos != len(data):
        raise ValueError("trailing bytes after a value")
    return value


def _describe(err: BaseException) -> bytes:
    try:
        text = f"{type(err).__name__}\n{str(err)[:500]}"
    except BaseException:  # a hostile __str__: the name is enough
        text = "BaseException\n"
    return text.encode("utf-8", "replace")


def _flush_streams() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:  # noqa: SIM105 (contextlib costs start-up time)
            stream.flush()
        except BaseException:
            pass


def _serve_program(cfg: dict, req_fd: int, rep_fd: int) -> None:
    """Run ``prog.py`` as ``__main__``, then answer calls of the entry point until EOF.

    Untrusted side: whatever this sends is only data for the judge to check.
    """
    chk = cfg["check"]
    if cfg["site"]:  # a fresh interpreter with site-packages, serving the same pipes
        os.set_inheritable(req_fd, True)
        os.set_inheritable(rep_fd, True)
        argv = [cfg["python"], "-I", "-c", chk["boot_source"], "--serve", str(req_fd), str(rep_fd)]
        argv.append(marshal.dumps({**cfg, "site": False}).hex())
        os.execve(cfg["python"], argv, dict(os.environ))
    if cfg["mode"] == "basic":
        _disable_sockets()
    with open("prog.py", "rb") as f:
        source = f.read()
    main = type(sys)("__main__")
    main.__file__ = "prog.py"
    sys.modules["__main__"] = main
    sys.argv = ["prog.py"]
    try:
        exec(compile(source, "prog.py", "exec"), main.__dict__)
        fn = main.__dict__.get(chk["entry_point"])
        if not callable(fn):
            raise NameError(f"the program defines no function {chk['entry_point']!r}")
    except BaseException as err:
        try:  # noqa: SIM105
            sys.excepthook(*sys.exc_info())
        except BaseException:
            pass
        _flush_streams()
        _send(rep_fd, b"E" + _describe(err))
        os._exit(1)
    _flush_streams()
    _send(rep_fd, b"R")
    cap = chk["max_message_bytes"]
    while True:
        frame = _recv(req_fd, cap)
        if frame is None:
            _flush_streams()
            os._exit(0)
        args, kwargs = decode(frame[1:])  # b"C" + (args, kwargs), from the judge
        try:
            reply = b"V" + encode(fn(*args, **kwargs))
        except BaseException as err:
            reply = b"E" + _describe(err)
        _flush_streams()
        _send(rep_fd, reply)


# --- graded mode: the judge's side (trusted: runs the tests, writes the verdict) ---


class ProgramFailed(BaseException):
    """The program died, sent garbage or too much: the run fails whatever the test does."""


class SetupFailed(Exception):
    """The program's side could not isolate itself (reported before any program code ran)."""


class CandidateError(Exception):
    """The candidate raised an exception that is not a built-in one."""


class _TestGlobals(dict):
    """The tests' globals: a name neither the tests nor the builtins define comes from the
    task's helper source (HumanEval's prompt: ``poly``, ``encode_cyclic``), executed in the
    judge on first use only (most tests need none, and the prompts' imports cost time)."""

    def __missing__(self, key: str) -> object:
        helpers = self.__dict__.get("helpers")
        if key in self.__dict__["builtins"] or key.startswith("__"):
            raise KeyError(key)
        if helpers is None:
            import builtins

            helpers = self.__dict__["helpers"] = {"__name__": "__helpers__", "__builtins__": builtins}
            exec(compile(self.__dict__["source"], "helpers.py", "exec"), helpers)
        if key not in helpers:
            raise KeyError(key)
        self[key] = helpers[key]
        return helpers[key]


def _candidate_exception(frame: bytes) -> BaseException:
    """The exception the candidate raised, as the judge re-raises it: a built-in
    ``Exception`` class by name (so tests expecting ``ValueError`` see one), else
    :class:`CandidateError`; never anything that is not an ``Exception``."""
    import builtins

    name, _, message = frame.decode("utf-8", "replace").partition("\n")
    cls = getattr(builtins, name, None) if name.isidentifier() else None
    if isinstance(cls, type) and issubclass(cls, Exception):
        try:
            return cls(message)
        except Exception:
            pass
    return CandidateError(f"{name}: {message}")


def _where(err: BaseException) -> str:
    tb, line = err.__traceback__, None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "test.py":
            line = tb.tb_lineno
        tb = tb.tb_next
    return "" if line is None else f" (test line {line})"


def _share_cpu(pid: int) -> None:
    """Put the judge and the program on one CPU for the calls: each call wakes the other
    side, and a wake-up on the same CPU costs a fraction of one across CPUs."""
    try:
        cpu = os.sched_getaffinity(0)
        here = _libc()[1].sched_getcpu()
        if here in cpu and pid:
            os.sched_setaffinity(pid, {here})
            os.sched_setaffinity(0, {here})
    except (OSError, AttributeError):
        pass


def _run_tests(spec: dict, cap: int, req_fd: int, rep_fd: int) -> str | None:
    """None when ``check(candidate)`` returned normally, else why the run failed."""
    broken: list[str] = []

    def fail(why: str) -> ProgramFailed:
        broken.append(why)
        return ProgramFailed(why)

    def candidate(*args: object, **kwargs: object) -> object:
        if broken:
            raise ProgramFailed(broken[0])
        try:
            _send(req_fd, b"C" + encode((args, kwargs)))
            reply = _recv(rep_fd, cap)
        except OSError:
            raise fail("the program died during a call") from None
        except ValueError as err:
            raise fail(f"the program sent {err}") from None
        if reply is None:
            raise fail("the program died during a call")
        kind = reply[:1]
        if kind == b"V":
            try:
                return decode(reply[1:])
            except (ValueError, UnicodeDecodeError, OverflowError) as err:
                raise fail(f"the program sent an undecodable value ({err})") from None
        if kind == b"E":
            raise _candidate_exception(reply[1:])
        raise fail("the program sent garbage")

    def failure(err: BaseException) -> str:
        if isinstance(err, ProgramFailed) or broken:
            return broken[0] if broken else str(err)
        name = type(err).__name__
        text = str(err)[:500]
        return f"{name}: {text}{_where(err)}" if text else f"{name}{_where(err)}"

    import builtins

    # Define the tests while the program is still starting (the two run side by side).
    ns = _TestGlobals(__name__="__check__", __builtins__=builtins)
    ns.__dict__.update(builtins=vars(builtins), source=spec["helpers"], helpers=None)
    defined: str | None = None
    try:
        exec(compile(spec["test"], "test.py", "exec"), ns)
        ns[spec["entry_point"]] = candidate
    except BaseException as err:
        defined = failure(err)

    setup = _recv(rep_fd, cap)  # sent before any program code ran: trusted
    if setup is None or setup[:1] == b"X":
        why = "the program's side died in set-up" if setup is None else setup[1:].decode("utf-8", "replace")
        raise SetupFailed(why)
    if defined is not None:
        return defined
    try:
        first = _recv(rep_fd, cap)
    except (OSError, ValueError) as err:
        return f"program: {err}"
    if first is None:
        return "the program ended before its function could be called"
    if first[:1] == b"E":
        name, _, message = first[1:].decode("utf-8", "replace").partition("\n")
        return f"program: {name}: {message}".rstrip(": ")
    if first != b"R":
        return "the program sent garbage"
    _share_cpu(spec.get("pid", 0))
    try:
        ns["check"](candidate)
    except BaseException as err:
        return failure(err)
    return broken[0] if broken else None


def _judge(cfg: dict, pid: int, req_fd: int, rep_fd: int) -> None:
    """Read the tests and the token (only now: the program is already forked and has closed
    this descriptor), run the tests against the program, kill it, write the verdict."""
    chk = cfg["check"]
    reason: str | None = "the judge did not finish"
    setup_failed = ""
    token = ""
    try:
        parts = []
        while chunk := os.read(chk["payload_fd"], 1 << 20):
            parts.append(chunk)
        os.close(chk["payload_fd"])
        spec = marshal.loads(b"".join(parts))
        spec["pid"] = pid
        token = spec["token"]
        reason = _run_tests(spec, chk["max_message_bytes"], req_fd, rep_fd)
    except SetupFailed as err:
        setup_failed = str(err)
    except BaseException as err:
        reason = f"judge: {err!r}"
    finally:
        _signal.signal(_signal.SIGTERM, _signal.SIG_IGN)
        try:  # noqa: SIM105
            os.kill(pid, _signal.SIGKILL)
        except OSError:
            pass
        os.waitpid(pid, 0)  # PID 1 of its namespace: once reaped, the namespace is empty
    verdict = "passed" if reason is None else "failed: " + " ".join(reason.split())[:2000]
    if setup_failed:
        verdict = "set-up failed: " + setup_failed[:2000]
    _send(chk["verdict_fd"], f"{token} {verdict}".encode("utf-8", "replace"))
    os._exit(0)


def _graded(cfg: dict) -> None:
    """Graded mode: namespaces, then fork into the program (child) and the judge (us)."""
    chk = cfg["check"]
    try:
        if cfg["mode"] == "userns":
            _map_user()
        if cfg["mode"] != "basic":
            _unshare(CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS)
        ctypes, libc = _libc()
        # Non-dumpable: no process of another uid, nor of ours without CAP_SYS_PTRACE, may
        # trace the judge or open its /proc files (memory, descriptors).
        _check(ctypes, libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0), "prctl")
        req_r, req_w = os.pipe()
        rep_r, rep_w = os.pipe()
    except OSError as err:
        sys.stderr.write(f"prefdelta sandbox: set-up failed: {err!r}\n")
        os._exit(125)
    pid = os.fork()
    if pid == 0:
        # Before anything else, let alone the program: drop every descriptor of the judge.
        for fd in (chk["payload_fd"], chk["verdict_fd"], req_w, rep_r):
            os.close(fd)
        libc.prctl(PR_SET_DUMPABLE, 1, 0, 0, 0)  # as an ordinary process (strict drops it again)
        _child(cfg, (req_r, rep_w))
    os.close(req_r)
    os.close(rep_w)
    _signal.signal(_signal.SIGTERM, lambda *_: os.kill(pid, _signal.SIGKILL))
    # The judge decodes what the program sends: bound its memory like the program's.
    memory = cfg["memory_mb"] << 20
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    _judge(cfg, pid, req_w, rep_r)


def _child(cfg: dict, serve: tuple[int, int] | None = None) -> None:
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
        elif cfg["mode"] == "userns":
            _drop_capabilities()
    except BaseException as err:  # the parent reads this from stderr
        sys.stderr.write(f"prefdelta sandbox: set-up failed: {err!r}\n")
        sys.stderr.flush()
        if serve is not None:  # the judge's first message, so a program cannot forge it
            _send(serve[1], b"X" + repr(err).encode("utf-8", "replace"))
        os._exit(125)
    if serve is not None:
        _send(serve[1], b"S")  # set up; from here on, the judge trusts nothing it reads
        _serve_program(cfg, *serve)
    _run_program(cfg)


def main() -> None:
    if sys.argv[1] == "--serve":  # graded mode with site-packages: the program's fresh interpreter
        _serve_program(marshal.loads(bytes.fromhex(sys.argv[4])), int(sys.argv[2]), int(sys.argv[3]))
    cfg = marshal.loads(bytes.fromhex(sys.argv[1]))  # marshal: built in, unlike json (re)
    if cfg.get("check"):
        _graded(cfg)
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
