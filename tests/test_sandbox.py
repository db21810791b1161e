"""The code sandbox holds: a hostile corpus is contained, graded as failure, leaves nothing.

Hostile programs run ONLY through the sandbox, with tight limits. Two safety nets keep a
broken sandbox from hurting this machine: a probe must first show the program runs as a
non-root uid in its own PID namespace (else the hostile tests are skipped loudly), and
nothing here signals ``-1`` or touches files outside this test's own temporary folder.
"""

from __future__ import annotations

import math
import os
import secrets
import socket
import time
from pathlib import Path

import pytest

from prefdelta.evaluate import sandbox
from prefdelta.evaluate.sandbox import Check, Limits, run_python
from prefdelta.evaluate.sandbox_boot import decode, encode

pytestmark = pytest.mark.integration

TIGHT = Limits(cpu_s=2, wall_s=4, memory_mb=256, file_size_mb=1, max_procs=8, tmpfs_mb=4)
UID_RANGE = range(200000, 250000)


def _sandbox_processes() -> list[int]:
    """Processes owned by the sandbox's throw-away uids (there must be none between runs)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}").st_uid in UID_RANGE:
                    found.append(int(entry))
            except OSError:
                continue
    return found


def _processes_mentioning(marker: str) -> list[int]:
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


def _sbx_dirs() -> set[str]:
    return {p.name for p in Path(os.environ.get("TMPDIR", "/tmp")).glob("prefdelta-sbx-*")}


@pytest.fixture(scope="module")
def isolated_mode() -> str:
    """The sandbox mode, after checking it isolates (else hostile code must not run here)."""
    mode = sandbox.best_mode()
    if mode == "basic":
        pytest.skip("no namespaces on this machine: the hostile corpus runs only where the sandbox isolates")
    probe = run_python(
        "import os, sys\n"
        "assert os.getpid() == 1, 'not PID 1 of a new PID namespace'\n"
        "assert os.getuid() != 0 or os.path.exists('/proc/self/uid_map') and "
        "open('/proc/self/uid_map').read().split()[1] != '0', 'still root'\n",
        TIGHT,
        mode,
    )
    assert probe.passed, probe.stderr
    return mode


def test_benign_program_passes_and_failures_fail():
    ok = run_python("print(sum(range(10)))", TIGHT)
    assert ok.passed and ok.stdout.strip() == "45"
    bad = run_python("assert 1 + 1 == 3", TIGHT)
    assert bad.status == "failed" and "AssertionError" in bad.stderr
    assert run_python("raise SystemExit(4)", TIGHT).returncode == 4


def test_output_is_capped():
    result = run_python("print('x' * 10**6)", Limits(wall_s=10, max_output_bytes=1000))
    assert len(result.stdout) == 1000


HOSTILE = {
    "infinite_loop": "while True:\n    pass\n",
    "fork_bomb": (
        "import os, sys\n"
        "if os.getuid() == 0 and open('/proc/self/uid_map').read().split()[1] == '0':\n"
        "    sys.exit(3)  # never bomb as real root: RLIMIT_NPROC would not hold\n"
        "while True:\n"
        "    try:\n"
        "        os.fork()\n"
        "    except OSError:\n"
        "        pass\n"
    ),
    "memory_bomb": "blocks = []\nwhile True:\n    blocks.append(bytearray(50 * 2**20))\n",
    "big_file": "with open('big.bin', 'wb') as f:\n    f.write(b'0' * (8 * 2**20))\n",
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_resource_bombs_are_contained(name, isolated_mode):
    before = _sbx_dirs()
    start = time.monotonic()
    result = run_python(HOSTILE[name], TIGHT, isolated_mode)
    assert not result.passed
    assert time.monotonic() - start < TIGHT.wall_s + 10  # a generous bound: the run ended
    assert _sandbox_processes() == []
    assert _sbx_dirs() <= before


def test_background_process_does_not_survive(isolated_mode):
    marker = str(400000 + secrets.randbelow(99999))
    src = (
        "import os\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        f"    os.execv('/bin/sleep', ['sleep', '{marker}'])\n"
        "raise SystemExit(1)\n"
    )
    result = run_python(src, TIGHT, isolated_mode)
    assert not result.passed
    time.sleep(0.2)
    assert _processes_mentioning(marker) == []
    assert _sandbox_processes() == []


def test_writes_outside_the_workdir_do_not_land(tmp_path, isolated_mode):
    token = secrets.token_hex(6)
    outside = tmp_path / "open"
    outside.mkdir()
    outside.chmod(0o777)  # only the sandbox, not file permissions, protects this folder
    targets = [f"/tmp/prefdelta-hostile-{token}", f"/var/tmp/prefdelta-hostile-{token}"]
    if Path("/dev/shm").is_dir():
        targets.append(f"/dev/shm/prefdelta-hostile-{token}")
    src = (
        "import contextlib\n"
        f"for p in {targets!r}:\n"
        "    with contextlib.suppress(OSError):\n"
        "        open(p, 'w').write('pwned')\n"
        f"open({str(outside / 'pwned.txt')!r}, 'w').write('pwned')\n"
    )
    result = run_python(src, TIGHT, isolated_mode)
    assert not result.passed
    assert not any(Path(p).exists() for p in targets)
    assert list(outside.iterdir()) == []


def test_os_system_cannot_delete_files(tmp_path, isolated_mode):
    folder = tmp_path / "victims"
    folder.mkdir()
    folder.chmod(0o777)
    canary = folder / "canary.txt"
    canary.write_text("alive")
    canary.chmod(0o666)
    src = f"import os, sys\nrc = os.system('rm {canary}')\nsys.exit(0 if rc == 0 and not os.path.exists({str(canary)!r}) else 1)\n"
    result = run_python(src, TIGHT, isolated_mode)
    assert not result.passed
    assert canary.read_text() == "alive"


def test_no_network(isolated_mode):
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.5)
    port = server.getsockname()[1]
    try:
        src = f"import socket\ns = socket.create_connection(('127.0.0.1', {port}), timeout=2)\ns.sendall(b'leak')\n"
        result = run_python(src, TIGHT, isolated_mode)
        assert not result.passed
        assert "Network is unreachable" in result.stderr or "refused" in result.stderr
        with pytest.raises(TimeoutError):
            server.accept()
    finally:
        server.close()


def test_environment_secrets_are_not_visible(monkeypatch, isolated_mode):
    secret = "prefdelta-fake-secret-" + secrets.token_hex(8)
    monkeypatch.setenv("PREFDELTA_FAKE_API_KEY", secret)
    src = (
        "import os\n"
        "print(dict(os.environ))\n"
        f"try:\n    print(open('/proc/{os.getpid()}/environ').read())\nexcept OSError as e:\n    print(e)\n"
        "print(os.environ['PREFDELTA_FAKE_API_KEY'])\n"
    )
    result = run_python(src, TIGHT, isolated_mode)
    assert not result.passed and "KeyError" in result.stderr
    assert secret not in result.stdout and secret not in result.stderr


def test_killing_the_parent_fails_and_the_run_goes_on(isolated_mode):
    me = os.getpid()
    for src in (
        f"import os, signal\nos.kill({me}, signal.SIGKILL)\nraise SystemExit(1)\n",
        "import os, signal\nos.kill(os.getppid() or 1, signal.SIGKILL)\nraise SystemExit(1)\n",
        "import os, signal\nos.killpg(os.getpgid(0), signal.SIGKILL)\nraise SystemExit(1)\n",
    ):
        # Each attack is followed by a failing check, as a wrong HumanEval answer would be.
        result = run_python(src, TIGHT, isolated_mode)
        assert not result.passed
    assert os.getpid() == me  # still here
    assert _sandbox_processes() == []


def test_basic_mode_disables_sockets():
    """The fallback without namespaces still refuses sockets (best effort, documented)."""
    result = run_python(
        "import socket\nsocket.create_connection(('127.0.0.1', 9), timeout=1)\n", TIGHT, mode="basic"
    )
    assert not result.passed and "network is disabled" in result.stderr


def test_describe_names_the_mode():
    assert sandbox.describe("basic").startswith("basic:")
    assert "NOT a security boundary" in sandbox.describe("basic")


# --- graded runs: the judge decides, the program only answers calls ------------------------

PLAIN = [None, True, False, 0, -1, 2**100, -(2**70), 1.5, -0.0, float("inf"), float("-inf"), 5e-324,
         3 + 4j, "", "héllo \ud800", b"\x00b", bytearray(b"x"), (), (1,), [1, [2, (3,)]],
         {"a": 1, (1, 2): [3]}, {1, 2}, frozenset({"a"}), range(1, 10, 3)]  # fmt: skip


def test_codec_round_trips_plain_values_exactly():
    for value in PLAIN:
        back = decode(encode(value))
        assert back == value and type(back) is type(value), value
    assert math.copysign(1.0, decode(encode(-0.0))) == -1.0
    nan = decode(encode(float("nan")))
    assert nan != nan
    assert type(decode(encode(1))) is int and decode(encode(True)) is True
    it = decode(encode(x for x in (1, 2)))  # an iterator stays one: equal to no list
    assert it != [1, 2] and list(it) == [1, 2]

    class Liar(str):
        def __eq__(self, other):
            return True

        __hash__ = str.__hash__

    back = decode(encode(Liar("a")))
    assert type(back) is str and back != "b"  # subclasses arrive as their plain base type
    with pytest.raises(TypeError):
        encode(object())


@pytest.mark.parametrize(
    "bad",
    [
        b"",
        b"Q",
        b"NN",  # trailing bytes
        b"i\x00\x00\x00\x05ab",  # truncated
        b"l\xff\xff\xff\xffN",  # claims 4 billion items
        b"S\x00\x00\x00\x01l\x00\x00\x00\x00",  # an unhashable set member
        b"l\x00\x00\x00\x01" * 200 + b"N",  # nested too deep
        b"s\x00\x00\x00\x02\xff\xfe",  # not UTF-8
        b"f\x03xyz",
        b"r" + encode(1) + encode("a") + encode(1),
    ],
)
def test_the_judges_decoder_rejects_malformed_answers(bad):
    with pytest.raises(ValueError):
        decode(bad)


ADD_TEST = "def check(candidate):\n    assert candidate(2, 3) == 5\n    assert candidate(-1, 1) == 0\n"


def test_graded_run_passes_only_when_check_returns():
    add = Check(ADD_TEST, "add")
    assert run_python("def add(a, b):\n    return a + b\n", TIGHT, check=add).passed
    wrong = run_python("def add(a, b):\n    return a - b\n", TIGHT, check=add)
    assert wrong.status == "failed" and wrong.detail == "AssertionError (test line 2)"
    exits = run_python("def add(a, b):\n    return a - b\nraise SystemExit(0)\n", TIGHT, check=add)
    assert exits.status == "failed" and "SystemExit" in exits.detail
    missing = run_python("def plus(a, b):\n    return a + b\n", TIGHT, check=add)
    assert missing.status == "failed" and "'add'" in missing.detail
    # Exit status, output and hooks of a right program do not matter either.
    noisy = "import atexit, os\natexit.register(os._exit, 7)\nprint('hi')\ndef add(a, b):\n    return a + b\n"
    result = run_python(noisy, TIGHT, check=add)
    assert result.passed and result.stdout == "hi\n"


def test_graded_run_candidate_exceptions_and_helpers():
    test = (
        "def check(candidate):\n"
        "    try:\n        candidate(-1)\n    except ValueError as e:\n        assert 'negative' in str(e)\n"
        "    else:\n        assert False, 'no ValueError'\n"
        "    assert candidate(4) == double(4)\n"
        "    assert f(3) == 6  # the entry point by name is the candidate too\n"
    )
    helpers = (
        "from typing import List\n\ndef double(x: int) -> int:\n    return 2 * x\n\ndef f(x):\n    pass\n"
    )
    program = "def f(x):\n    if x < 0:\n        raise ValueError('negative')\n    return 2 * x\n"
    assert run_python(program, TIGHT, check=Check(test, "f", helpers)).passed


def test_a_dead_program_fails_even_when_the_tests_swallow_errors():
    test = "def check(candidate):\n    try:\n        candidate()\n    except BaseException:\n        pass\n"
    result = run_python("import os\ndef f():\n    os._exit(0)\n", TIGHT, check=Check(test, "f"))
    assert result.status == "failed" and "died" in result.detail
    # A raising candidate is an ordinary exception the tests may expect.
    assert run_python("def f():\n    raise KeyError(1)\n", TIGHT, check=Check(test, "f")).passed


def test_the_program_never_holds_the_tests_or_the_token(monkeypatch):
    token = secrets.token_hex(16)
    monkeypatch.setattr(sandbox, "_verdict_token", lambda: token)
    marker = "unique-" + secrets.token_hex(8)
    test = f"def check(candidate):\n    assert candidate() == {marker!r}\n"
    snoop = (
        "import os, sys\n"
        "print(sys.argv, dict(os.environ))\n"
        "for path in ('/proc/self/cmdline', '/proc/self/environ'):\n"
        "    print(open(path, 'rb').read())\n"
        "for fd in range(64):\n"
        "    try:\n        print(fd, os.pread(fd, 1 << 16, 0))\n    except OSError:\n        pass\n"
        "def f():\n    return 'guess'\n"
    )
    result = run_python(snoop, TIGHT, check=Check(test, "f"))
    assert result.status == "failed"
    assert marker not in result.stdout + result.stderr
    assert token not in result.stdout + result.stderr


def test_graded_set_up_failure_is_a_sandbox_error(monkeypatch):
    """Reported by the program's side before any program code ran, so it cannot be forged."""
    real = sandbox._boot_config
    monkeypatch.setattr(sandbox, "_boot_config", lambda *a: {**real(*a), "nproc": -5})
    with pytest.raises(sandbox.SandboxError, match="set-up failed"):
        run_python("def f():\n    return 1\n", TIGHT, check=Check("def check(c):\n    pass\n", "f"))


def test_graded_runs_in_every_mode_and_with_site_packages():
    add = Check(ADD_TEST, "add")
    tried = []
    for mode in ("strict", "userns", "basic"):
        for limits in (TIGHT, Limits(wall_s=20, site=True)):
            try:
                right = run_python("def add(a, b):\n    return a + b\n", limits, mode, add)
            except sandbox.SandboxError:
                continue  # this mode is not available here
            assert right.passed, (mode, limits.site, right.detail, right.stderr)
            assert not run_python("import sys\nsys.exit(0)\n", limits, mode, add).passed
            tried.append((mode, limits.site))
    assert ("basic", False) in tried and ("basic", True) in tried


def test_run_many_needs_one_check_per_program():
    with pytest.raises(ValueError, match="checks"):
        sandbox.run_many(["pass"], TIGHT, checks=[])


def test_a_program_too_big_for_the_sandbox_fails_without_aborting_the_run():
    big = "x = 1\n" + "#" * (3 << 20) + "\n"
    result = run_python(big, TIGHT)  # tmpfs_mb=4 (in basic mode there is no tmpfs: it just runs)
    assert result.passed == (sandbox.best_mode() == "basic")


def test_the_program_cannot_replace_what_the_judge_imports():
    """The judge imports the tests' modules after the program ran: the program must not be
    able to mount over them or write beside them (only namespaced modes: in basic mode a
    mount would land on this machine)."""
    import colorsys

    stray = Path(colorsys.__file__).with_name(f"prefdelta_probe_{secrets.token_hex(4)}.py")
    hijack = (
        "import colorsys, ctypes, os\n"
        "os.makedirs('/tmp/fake', exist_ok=True)\n"
        "open('/tmp/fake/colorsys.py', 'w').write('HIJACKED = True\\n')\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "libc.mount(b'/tmp/fake/colorsys.py', colorsys.__file__.encode(), None, 4096, None)  # MS_BIND\n"
        "libc.mount(b'/tmp/fake', os.path.dirname(colorsys.__file__).encode(), None, 4096, None)\n"
        f"try:\n    open({str(stray)!r}, 'w').write('HIJACKED = True\\n')\nexcept OSError:\n    pass\n"
        "sys_modules_hint = None\n"
        "def f():\n    return 1\n"
    )
    test = "def check(candidate):\n    import colorsys\n    assert not hasattr(colorsys, 'HIJACKED')\n    assert candidate() == 1\n"
    tried = 0
    try:
        for mode in ("strict", "userns"):
            try:
                result = run_python(hijack, TIGHT, mode, Check(test, "f"))
            except sandbox.SandboxError:
                continue
            tried += 1
            assert result.passed, (mode, result.detail)  # the judge got the real colorsys
            assert not stray.exists(), mode
    finally:
        stray.unlink(missing_ok=True)
    if not tried:
        pytest.skip("no namespaced mode on this machine")
