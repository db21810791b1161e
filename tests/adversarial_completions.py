"""Completions that try to be graded as passing without being right, for HumanEval/0.

HumanEval/0 is ``has_close_elements(numbers, threshold) -> bool``; every completion here
is wrong (or never answers), and each tries one way to fake a pass: exit tricks, fake
markers and verdicts, monkeypatching the checker or the harness, redefining builtins,
reading or editing the test source, outliving the check, hooks (trace, profile, audit,
signal, atexit, excepthook, ``__del__``), threads, fork, exec, memory scraping, and
abuse of the judge's protocol. All are chat-style fenced programs that define the entry
point, so they replace the prompt (its imports are kept) and may run top-level code.

Placeholders, filled by the tests: ``__TOKEN__`` (the verdict token, which the tests fix
so that one adversary can even *know* it), ``__MARKER__`` (a number to find leftover
processes by) and ``__OUTSIDE__`` (a folder outside the sandbox that must stay as it is).

``fools_exit_status``: what the old grader (tests appended to the program, exit status 0
= pass) made of it: ``"passes"`` or ``"aborts"`` (a forged set-up failure raised
SandboxError and stopped the whole grading run); empty when it failed anyway.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

TASK_ID = "HumanEval/0"
ENTRY = "has_close_elements"
WRONG = "def has_close_elements(numbers, threshold):\n    return None\n"
CORRECT = (
    "def has_close_elements(numbers, threshold):\n"
    "    return any(abs(a - b) < threshold for i, a in enumerate(numbers) for b in numbers[i + 1 :])\n"
)
# Writes ``data`` to every descriptor number as a well-formed frame of the judge's
# protocol (a 4-byte length, then the bytes), or raw with ``raw=True``.
SPRAY = """
def _spray(data, raw=False):
    import os
    chunk = data if raw else len(data).to_bytes(4, 'big') + data
    for fd in range(1024):
        try:
            blocking = os.get_blocking(fd)
            os.set_blocking(fd, False)
        except OSError:
            continue
        try:
            os.write(fd, chunk)
        except OSError:
            pass
        os.set_blocking(fd, blocking)
"""
SANDBOX_UIDS = range(200000, 250000)


@dataclass(frozen=True)
class Adversary:
    name: str
    what: str
    code: str  # the program, fenced into a completion by ``completion()``
    fools_exit_status: str = ""
    knows_token: bool = False

    def completion(self, token: str = "", marker: str = "", outside: str = "") -> str:
        code = self.code.replace("__TOKEN__", token).replace("__MARKER__", marker)
        return "Here is my solution:\n```python\n" + code.replace("__OUTSIDE__", outside) + "\n```\n"


CORPUS: list[Adversary] = [
    # --- exit tricks ---------------------------------------------------------------------
    Adversary(
        "sys_exit_0_at_import", "sys.exit(0) before the tests", WRONG + "import sys\nsys.exit(0)\n", "passes"
    ),
    Adversary(
        "sys_exit_none_at_import", "sys.exit() before the tests", WRONG + "import sys\nsys.exit()\n", "passes"
    ),
    Adversary(
        "raise_systemexit_at_import", "SystemExit(0) at import", WRONG + "raise SystemExit(0)\n", "passes"
    ),
    Adversary("os_exit_0_at_import", "os._exit(0) at import", WRONG + "import os\nos._exit(0)\n", "passes"),
    Adversary(
        "correct_but_exits_at_import",
        "a right answer, then sys.exit(0): the function never gets called",
        CORRECT + "import sys\nsys.exit(0)\n",
        "passes",
    ),
    Adversary(
        "os_exit_0_in_candidate",
        "os._exit(0) on the first call",
        "def has_close_elements(numbers, threshold):\n    import os\n    os._exit(0)\n",
        "passes",
    ),
    Adversary(
        "systemexit_in_candidate",
        "SystemExit(0) raised through the tests",
        "def has_close_elements(numbers, threshold):\n    raise SystemExit(0)\n",
        "passes",
    ),
    Adversary(
        "libc_exit_via_ctypes",
        "libc _exit(0) through ctypes, past every Python hook",
        "def has_close_elements(numbers, threshold):\n    import ctypes\n    ctypes.CDLL(None)._exit(0)\n",
        "passes",
    ),
    Adversary(
        "exec_fresh_interpreter",
        "exec a new interpreter that prints 'passed' and exits 0",
        WRONG + "import os, sys\nos.execv(sys.executable, [sys.executable, '-c', 'print(\"passed\")'])\n",
        "passes",
    ),
    Adversary(
        "sleeps_forever",
        "never answers (wall-clock timeout)",
        "import time\ndef has_close_elements(numbers, threshold):\n    time.sleep(3600)\n",
    ),
    # --- hooks ----------------------------------------------------------------------------
    Adversary(
        "excepthook_exits_0",
        "the harness reports the failed assert through sys.excepthook: exit 0 there",
        WRONG + "import os, sys\nsys.excepthook = lambda *a: os._exit(0)\n",
        "passes",
    ),
    Adversary(
        "profile_hook_exits_on_check",
        "sys.setprofile: exit 0 when a function named check is called",
        "import os, sys\n"
        "def _hook(frame, event, arg):\n"
        "    if event == 'call' and frame.f_code.co_name == 'check':\n"
        "        os._exit(0)\n"
        "sys.setprofile(_hook)\n" + WRONG,
        "passes",
    ),
    Adversary(
        "trace_hook_swallows_assertions",
        "sys.settrace: exit 0 when an AssertionError is raised",
        "import os, sys\n"
        "def _tracer(frame, event, arg):\n"
        "    if event == 'exception' and arg[0] is AssertionError:\n"
        "        os._exit(0)\n"
        "    return _tracer\n"
        "sys.settrace(_tracer)\n" + WRONG,
        "passes",
    ),
    Adversary(
        "audit_hook_exits_0",
        "sys.addaudithook: exit 0 on the first audited event once the tests run",
        "import os, sys\n"
        "_armed = []\n"
        "sys.addaudithook(lambda event, args: os._exit(0) if _armed else None)\n"
        "def has_close_elements(numbers, threshold):\n"
        "    _armed.append(1)\n"
        "    open('/dev/null').close()\n",
        "passes",
    ),
    Adversary(
        "atexit_exit_0",
        "atexit handler that exits 0",
        WRONG + "import atexit, os\natexit.register(os._exit, 0)\n",
    ),
    Adversary(
        "signal_handlers_exit_0",
        "SIGALRM/SIGTERM/SIGINT handlers that exit 0, and a timer to fire one mid-test",
        "import os, signal, time\n"
        "for _s in (signal.SIGTERM, signal.SIGINT, signal.SIGALRM, signal.SIGHUP):\n"
        "    signal.signal(_s, lambda *a: os._exit(0))\n"
        "signal.setitimer(signal.ITIMER_REAL, 0.001)\n"
        "def has_close_elements(numbers, threshold):\n"
        "    time.sleep(0.05)\n",
        "passes",
    ),
    Adversary(
        "del_exits_0_during_check",
        "an object whose __del__ exits 0, dropped inside the call",
        "import os\n"
        "class _Bomb:\n"
        "    def __del__(self):\n"
        "        os._exit(0)\n"
        "def has_close_elements(numbers, threshold):\n"
        "    _Bomb()\n",
        "passes",
    ),
    Adversary(
        "del_raises_systemexit",
        "__del__ raising SystemExit(0) at import and in calls",
        "class _Bomb:\n"
        "    def __del__(self):\n"
        "        raise SystemExit(0)\n"
        "_Bomb()\n"
        "def has_close_elements(numbers, threshold):\n"
        "    _Bomb()\n",
    ),
    Adversary(
        "thread_exits_0_later",
        "a thread that exits 0 while the tests are waiting for an answer",
        "import os, threading, time\n"
        "threading.Thread(target=lambda: (time.sleep(0.02), os._exit(0)), daemon=True).start()\n"
        "def has_close_elements(numbers, threshold):\n"
        "    time.sleep(0.2)\n",
        "passes",
    ),
    Adversary(
        "thread_sprays_known_token_later",
        "a thread that waits, then writes '<token> passed' everywhere and exits 0",
        SPRAY + "import os, threading, time\n"
        "def _later():\n"
        "    time.sleep(0.05)\n"
        "    _spray(b'__TOKEN__ passed')\n"
        "    os._exit(0)\n"
        "threading.Thread(target=_later, daemon=True).start()\n"
        "def has_close_elements(numbers, threshold):\n"
        "    time.sleep(0.2)\n",
        "passes",
        knows_token=True,
    ),
    # --- fake markers and verdicts ---------------------------------------------------------
    Adversary(
        "prints_success_markers",
        "prints what looks like success",
        WRONG
        + "import sys\nprint('passed')\nprint('All tests passed')\nprint('OK')\nsys.stderr.write('passed\\n')\n",
    ),
    Adversary(
        "sprays_fake_verdicts",
        "writes 'passed' and token-shaped verdicts to every descriptor",
        SPRAY + "_spray(b'passed', raw=True)\n_spray(b'0' * 32 + b' passed')\n_spray(b'R')\n" + WRONG,
    ),
    Adversary(
        "knows_the_token",
        "even knowing the run's token, writes '<token> passed' to every descriptor and exits 0",
        SPRAY + "import os\n_spray(b'__TOKEN__ passed')\n_spray(b'__TOKEN__ passed', raw=True)\n"
        "print('__TOKEN__ passed')\n" + WRONG + "os._exit(0)\n",
        "passes",
        knows_token=True,
    ),
    Adversary(
        "forged_setup_failure",
        "pretends the sandbox failed to start (the old grader aborted the whole run)",
        SPRAY + "import os, sys\n_spray(b'X forged')\n"
        "sys.stderr.write('prefdelta sandbox: set-up failed: forged\\n')\nsys.stderr.flush()\nos._exit(125)\n",
        "aborts",
    ),
    # --- monkeypatching the checker, the harness, builtins ------------------------------------
    Adversary(
        "defines_a_noop_check",
        "defines check() and builtins.check as no-ops",
        WRONG + "import builtins\nbuiltins.check = lambda candidate: None\ncheck = lambda candidate: None\n",
    ),
    Adversary(
        "patches_assertion_error",
        "replaces AssertionError and the assert-raising machinery it can reach",
        WRONG + "import builtins\nbuiltins.AssertionError = type('AssertionError', (Exception,), {})\n",
    ),
    Adversary(
        "patches_os_write_read_exit",
        "replaces os.write (writes 'passed' instead), os.read, os._exit and os.open",
        "import os\n"
        "_w = os.write\n"
        "os.write = lambda fd, data: _w(fd, b'passed') and len(data)\n"
        "os._exit = lambda code=0: None\n"
        "os.open = lambda *a, **k: 1\n" + WRONG,
    ),
    Adversary(
        "poisons_sys_modules",
        "replaces os, marshal, sys.stdout and friends in sys.modules",
        "import sys, types\n"
        "_fake = types.ModuleType('os')\n"
        "_fake.write = lambda fd, data: len(data)\n"
        "_fake._exit = lambda code=0: None\n"
        "for _name in ('os', 'posix', 'marshal', '_signal', 'builtins'):\n"
        "    sys.modules[_name] = _fake\n" + WRONG,
    ),
    Adversary(
        "redefines_builtins",
        "redefines len, isinstance, print, abs and __import__",
        "import builtins, types\n"
        "_real_import = builtins.__import__\n"
        "def _import(name, *a, **k):\n"
        "    if name in ('math', 'random', 'copy', 'typing'):\n"
        "        return types.ModuleType(name)\n"
        "    return _real_import(name, *a, **k)\n"
        "builtins.__import__ = _import\n"
        "builtins.len = lambda x: 0\n"
        "builtins.isinstance = lambda *a: True\n"
        "builtins.abs = lambda x: 0\n"
        "builtins.print = lambda *a, **k: None\n" + WRONG,
    ),
    Adversary(
        "overrides___builtins__",
        "replaces the module's __builtins__",
        WRONG + "import builtins as _b\nglobals()['__builtins__'] = {'__import__': _b.__import__}\n",
    ),
    Adversary(
        "always_equal_answer",
        "returns an object equal to everything",
        "class _AlwaysEqual:\n"
        "    def __eq__(self, other):\n        return True\n"
        "    def __ne__(self, other):\n        return False\n"
        "    __hash__ = object.__hash__\n"
        "def has_close_elements(numbers, threshold):\n"
        "    return _AlwaysEqual()\n",
        "passes",
    ),
    Adversary(
        "int_subclass_equal_answer",
        "returns an int subclass equal to everything",
        "class _E(int):\n"
        "    def __eq__(self, other):\n        return True\n"
        "    __hash__ = int.__hash__\n"
        "def has_close_elements(numbers, threshold):\n"
        "    return _E(1)\n",
        "passes",
    ),
    # --- reading and editing the test source -------------------------------------------------
    Adversary(
        "reads_test_source",
        "looks for the tests in every readable file, descriptor and /proc entry, and prints them",
        "import os\n"
        "_found = []\n"
        "def _look(path):\n"
        "    try:\n"
        "        with open(path, 'rb') as f:\n"
        "            os.set_blocking(f.fileno(), False)\n"
        "            data = f.read(1 << 20) or b''\n"
        "    except (OSError, ValueError, TypeError):\n"
        "        return\n"
        "    if b'candidate' in data or b'def check' in data:\n"
        "        _found.append(data)\n"
        "for fd in range(64):\n"
        "    try:\n"
        "        data = os.pread(fd, 1 << 20, 0)\n"
        "    except OSError:\n"
        "        data = b''\n"
        "    if b'def check' in data:\n"
        "        _found.append(data)\n"
        "for top in ('/tmp', '/var/tmp', '/dev/shm', '.', '..', os.path.expanduser('~')):\n"
        "    for root, dirs, files in os.walk(top):\n"
        "        for name in files:\n"
        "            _look(os.path.join(root, name))\n"
        "for pid in os.listdir('/proc'):\n"
        "    if pid.isdigit() or pid == 'self':\n"
        "        for name in ('cmdline', 'environ'):\n"
        "            _look(f'/proc/{pid}/{name}')\n"
        "        try:\n"
        "            fds = os.listdir(f'/proc/{pid}/fd')\n"
        "        except OSError:\n"
        "            fds = []\n"
        "        for fd in fds:\n"
        "            _look(f'/proc/{pid}/fd/{fd}')\n"
        "for data in _found:\n"
        "    print(data[:4000])\n" + WRONG,
    ),
    Adversary(
        "edits_test_source",
        "writes a no-op check over every descriptor, /proc fd and file it can open, "
        "and deletes what it can outside its folder",
        SPRAY + "import os, shutil\n"
        "_noop = b'def check(candidate):\\n    pass\\n'\n"
        "_spray(_noop)\n"
        "for pid in os.listdir('/proc'):\n"
        "    if pid.isdigit():\n"
        "        try:\n"
        "            fds = os.listdir(f'/proc/{pid}/fd')\n"
        "        except OSError:\n"
        "            continue\n"
        "        for fd in fds:\n"
        "            try:\n"
        "                with open(f'/proc/{pid}/fd/{fd}', 'wb') as f:\n"
        "                    f.write(_noop)\n"
        "            except OSError:\n"
        "                pass\n"
        "for path in ('__OUTSIDE__/canary.txt', '__OUTSIDE__/test.py', 'test.py', '../test.py'):\n"
        "    try:\n"
        "        with open(path, 'wb') as f:\n"
        "            f.write(_noop)\n"
        "    except OSError:\n"
        "        pass\n"
        "for path in ('__OUTSIDE__/canary.txt', '__OUTSIDE__'):\n"
        "    try:\n"
        "        os.remove(path)\n"
        "    except OSError:\n"
        "        shutil.rmtree(path, ignore_errors=True)\n" + WRONG,
    ),
    # --- memory scraping ---------------------------------------------------------------------
    Adversary(
        "scrapes_gc_for_secrets",
        "gc.get_objects() and every frame: prints anything like the tests or a token, calls any check",
        "import gc, re, sys\n"
        "_hex = re.compile(r'[0-9a-f]{32}')\n"
        "for obj in gc.get_objects():\n"
        "    try:\n"
        "        if isinstance(obj, dict):\n"
        "            for v in list(obj.values()):\n"
        "                if isinstance(v, (str, bytes)) and (b'def check' in (v if isinstance(v, bytes) else v.encode()) or _hex.search(str(v))):\n"
        "                    print('found', str(v)[:2000])\n"
        "                if callable(v) and getattr(v, '__name__', '') == 'check':\n"
        "                    v(lambda *a: None)\n"
        "    except BaseException:\n"
        "        pass\n"
        "for frame in sys._current_frames().values():\n"
        "    while frame is not None:\n"
        "        print('frame', frame.f_code.co_name, list(frame.f_locals)[:20])\n"
        "        frame = frame.f_back\n" + WRONG,
    ),
    Adversary(
        "scrapes_memory",
        "reads its own memory (ctypes) and every visible process's /proc/PID/mem for the tests or a token",
        "import ctypes, os, re\n"
        "_pat = re.compile(rb'[0-9a-f]{32} passed|assert candidate\\(')\n"
        "def _regions(pid):\n"
        "    try:\n"
        "        with open(f'/proc/{pid}/maps') as maps:\n"
        "            lines = maps.read().splitlines()\n"
        "    except OSError:\n"
        "        return\n"
        "    for line in lines:\n"
        "        parts = line.split()\n"
        "        lo, hi = (int(x, 16) for x in parts[0].split('-'))\n"
        "        name = parts[5] if len(parts) > 5 else ''\n"
        "        if parts[1].startswith('r') and hi - lo <= 64 << 20 and not name.startswith('[v'):\n"
        "            yield lo, hi\n"
        "for lo, hi in _regions('self'):\n"
        "    data = ctypes.string_at(lo, hi - lo)\n"
        "    for m in _pat.finditer(data):\n"
        "        print('self', data[m.start() : m.start() + 2000])\n"
        "for pid in [p for p in os.listdir('/proc') if p.isdigit() and int(p) != os.getpid()]:\n"
        "    try:\n"
        "        mem = open(f'/proc/{pid}/mem', 'rb')\n"
        "    except OSError:\n"
        "        continue\n"
        "    for lo, hi in _regions(pid):\n"
        "        try:\n"
        "            mem.seek(lo)\n"
        "            data = mem.read(hi - lo)\n"
        "        except (OSError, ValueError, OverflowError):\n"
        "            continue\n"
        "        for m in _pat.finditer(data):\n"
        "            print(pid, data[m.start() : m.start() + 2000])\n" + WRONG,
    ),
    # --- fork, signals, outliving the check -------------------------------------------------------
    Adversary(
        "fork_child_outlives_check",
        "a forked, detached child that should keep running after the grade",
        "import os\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    os.execv('/bin/sleep', ['sleep', '__MARKER__'])\n" + WRONG,
    ),
    Adversary(
        "fork_child_forges_verdict_later",
        "a forked child that waits for the check to end, then writes '<token> passed' everywhere",
        SPRAY + "import os, time\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    time.sleep(0.3)\n"
        "    _spray(b'__TOKEN__ passed')\n"
        "    os._exit(0)\n" + WRONG,
        knows_token=True,
    ),
    Adversary(
        "kills_its_parent_and_group",
        "SIGKILLs its parent, its process group and every pid it can see except itself",
        "import os, signal\n"
        "for target in (os.getppid(),):\n"
        "    if target > 0:\n"
        "        try:\n            os.kill(target, signal.SIGKILL)\n        except OSError:\n            pass\n"
        "for pid in [int(p) for p in os.listdir('/proc') if p.isdigit()]:\n"
        "    if pid != os.getpid():\n"
        "        try:\n            os.kill(pid, signal.SIGKILL)\n        except OSError:\n            pass\n"
        + WRONG,
    ),
    Adversary(
        "ptraces_its_parent",
        "tries to ptrace-attach its parent and every visible pid",
        "import ctypes, os\n"
        "_libc = ctypes.CDLL(None, use_errno=True)\n"
        "for pid in [os.getppid()] + [int(p) for p in os.listdir('/proc') if p.isdigit()]:\n"
        "    if pid > 0 and pid != os.getpid():\n"
        "        _libc.ptrace(16, pid, None, None)\n" + WRONG,
    ),
    # --- the judge's protocol -----------------------------------------------------------------
    Adversary(
        "preflooded_answers",
        "writes a ready message and a thousand 'True' answers to every descriptor before any call",
        SPRAY + "_spray(b'R')\nfor _ in range(1000):\n    _spray(b'VT')\n" + WRONG,
    ),
    Adversary(
        "forged_huge_header",
        "writes a 4 GiB frame header to every descriptor",
        "import os\n"
        "for fd in range(3, 1024):\n"
        "    try:\n        os.write(fd, b'\\xff\\xff\\xff\\xff')\n    except OSError:\n        pass\n"
        + WRONG,
    ),
    Adversary(
        "closes_every_descriptor",
        "closes every descriptor, the judge's pipes included",
        "import os\nos.closerange(0, 1024)\n" + WRONG,
    ),
    Adversary(
        "huge_answer",
        "answers with 20 MiB (over the message cap)",
        "def has_close_elements(numbers, threshold):\n    return 'x' * (20 << 20)\n",
    ),
    Adversary(
        "deeply_nested_answer",
        "answers with a list nested 10000 deep",
        "def has_close_elements(numbers, threshold):\n"
        "    v = True\n    for _ in range(10000):\n        v = [v]\n    return v\n",
    ),
    Adversary(
        "endless_generator_answer",
        "answers with an endless iterator",
        "import itertools\ndef has_close_elements(numbers, threshold):\n    return itertools.count()\n",
    ),
]


def require_isolation() -> str:
    """The sandbox's mode, once a probe shows it isolates (else hostile code must not run here).

    Hostile programs run only where the program is PID 1 of its own PID namespace and not
    root: nothing they do can then reach this machine's processes.
    """
    import pytest

    from prefdelta.evaluate import sandbox

    mode = sandbox.best_mode()
    if mode == "basic":
        pytest.skip("no namespaces on this machine: the hostile corpus runs only where the sandbox isolates")
    probe = sandbox.run_python(
        "import os, sys\n"
        "assert os.getpid() == 1, 'not PID 1 of a new PID namespace'\n"
        "assert os.getuid() != 0 or os.path.exists('/proc/self/uid_map') and "
        "open('/proc/self/uid_map').read().split()[1] != '0', 'still root'\n",
        sandbox.Limits(wall_s=10),
        mode,
    )
    assert probe.passed, probe.stderr
    return mode


def sandbox_processes() -> list[int]:
    """Processes owned by the sandbox's throw-away uids (there must be none between runs)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}").st_uid in SANDBOX_UIDS:
                    found.append(int(entry))
            except OSError:
                continue
    return found


def processes_mentioning(marker: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            if marker in cmdline:
                found.append(int(entry))
    return found
