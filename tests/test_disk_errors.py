"""Full disk, read-only workspace, no permission, impossible paths: every command that writes
ends with exit 2 and one line (what failed, where, what to do), leaves no temporary files,
no ``models/*.tmp`` folders and no half-imported tables, and re-runs cleanly once the
disk has room again. Real commands on real small file systems (tmpfs mounts; skipped
with the reason where mounting is not permitted)."""

from __future__ import annotations

import ctypes
import errno
import json
import os
import random
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import pytest
import yaml

from prefdelta.errors import DiskError, disk_error
from prefdelta.workspace import Workspace

PREFDELTA = [sys.executable, "-m", "prefdelta.cli.entry"]
ARITH = {"min_steps": 1, "max_steps": 1, "high": 4, "ops": ["add"]}


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """Run the real entry point in-process: its exit code and stderr."""
    from prefdelta.cli import main

    try:
        main(list(args))
        code = 0
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    return code, capsys.readouterr().err


def one_error_line(stderr: str) -> str:
    """The single ``error:`` line a failed command ends with (and no traceback)."""
    assert "Traceback" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, stderr
    assert stderr.strip().splitlines()[-1] == errors[0]
    return errors[0]


def leftovers(root: Path) -> list[Path]:
    """Temporary files and folders a failed write could leave anywhere under ``root``."""
    return [p for p in root.rglob("*") if ".tmp-" in p.name or p.name.endswith(".tmp")]


def write_spec(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


def problems_spec(tmp_path: Path, n: int) -> Path:
    problems = [{"source": "arith", "split": "pairs", "n": n, "seed": 2}]
    return write_spec(tmp_path / "problems.yaml", {"name": "disk", "threads": 1, "problems": problems})


class Tmpfs:
    """A small tmpfs mounted for one test (unmounted at its end)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.mounted: list[Path] = []

    def mount(self, name: str, size: str) -> Path:
        path = self.root / name
        path.mkdir()
        proc = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True, text=True
        )
        if proc.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here (needs root or CAP_SYS_ADMIN): {proc.stderr.strip()}")
        self.mounted.append(path)
        return path

    def remount(self, path: Path, options: str) -> None:
        subprocess.run(["mount", "-o", f"remount,{options}", str(path)], check=True)


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Tmpfs]:
    fs = Tmpfs(tmp_path)
    yield fs
    for path in reversed(fs.mounted):
        subprocess.run(["umount", "-l", str(path)], check=False)


# ---- a full disk ------------------------------------------------------------------------------


def test_full_disk_a_table_write_fails_in_one_line_leaves_nothing_and_reruns(tmpfs, tmp_path, capsys):
    disk = tmpfs.mount("disk", "128k")
    spec = problems_spec(tmp_path, 3000)  # ~330 kB of problems
    ws = disk / "ws"
    code, err = cli(capsys, "problems", "-c", str(spec), "-w", str(ws))
    assert code == 2
    line = one_error_line(err)
    assert f"cannot write {ws / 'tables' / 'problems' / 'data.parquet'}: no space left" in line
    assert "free space there" in line and "re-run" in line
    assert leftovers(disk) == []
    assert not list(ws.glob("tables/*/*.parquet"))
    tmpfs.remount(disk, "size=16m")  # space freed
    code, err = cli(capsys, "problems", "-c", str(spec), "-w", str(ws))
    assert code == 0, err
    assert len(Workspace(ws).read_table("problems")) == 3000
    assert leftovers(disk) == []


@pytest.mark.integration
def test_full_disk_a_model_save_fails_in_one_line_without_a_tmp_folder_and_reruns(tmpfs, tmp_path, capsys):
    disk = tmpfs.mount("disk", "96k")  # the tokenizer fits, the model does not
    spec = write_spec(
        tmp_path / "zoo.yaml",
        {
            "name": "disk-zoo",
            "threads": 1,
            "problems": [{"source": "arith", "split": "pairs", "n": 8, "seed": 2, "spec": ARITH}],
            "zoo": {
                "train": {"n": 40, "seed": 1, "spec": ARITH},
                "tokenizer_vocab": 400,
                "models": [
                    {"id": "tiny", "family": "llama", "hidden": 32, "layers": 1, "heads": 2, "steps": 3}
                ],
            },
            "generators": ["tiny"],
        },
    )
    ws = disk / "ws"
    code, err = cli(capsys, "zoo", "-c", str(spec), "-w", str(ws))
    assert code == 2
    line = one_error_line(err)
    assert f"cannot save the model {ws / 'models' / 'tiny'}: no space left" in line
    assert leftovers(disk) == [] and not (ws / "models" / "tiny").exists()
    tmpfs.remount(disk, "size=16m")
    code, err = cli(capsys, "zoo", "-c", str(spec), "-w", str(ws))
    assert code == 0, err
    assert (ws / "models" / "tiny" / "config.json").is_file()
    assert Workspace(ws).read_table("zoo")["generator_id"].tolist() == ["tiny"]
    assert leftovers(disk) == []


@pytest.mark.integration
def test_full_disk_in_the_middle_of_a_study_run_then_the_rerun_finishes_it(tmpfs, capsys):
    disk = tmpfs.mount("disk", "3m")  # the tiny study needs about 6 MB: it fills up while training
    tiny = Path(__file__).parent / "data" / "tiny_study.yaml"
    ws = disk / "ws"
    code, err = cli(capsys, "run", str(tiny), "-w", str(ws))
    assert code == 2
    line = one_error_line(err)
    assert "cannot " in line and f"{ws}" in line and "no space left" in line
    assert leftovers(disk) == []
    tmpfs.remount(disk, "size=32m")
    code, err = cli(capsys, "run", str(tiny), "-w", str(ws))
    assert code == 0, err
    assert (ws / "reports" / "summary.md").is_file()
    assert len(Workspace(ws).read_table("evals")) > 0
    assert leftovers(disk) == []


def import_files(folder: Path, n: int) -> tuple[Path, Path]:
    """A traces and a judgments JSONL of ``n`` traces (random texts: they do not compress)."""
    rng = random.Random(0)
    traces, judgments = folder / "traces.jsonl", folder / "judgments.jsonl"
    with traces.open("w") as t, judgments.open("w") as j:
        for i in range(n):
            text = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789 ") for _ in range(300))
            tid = f"t{i:05d}-{rng.getrandbits(64):016x}"
            t.write(
                json.dumps(
                    {"trace_id": tid, "problem_id": f"p{i}", "generator_id": f"g{i % 2}", "text": text}
                )
            )
            t.write("\n")
            scores = {d: rng.randint(1, 5) for d in ("factuality", "strategy_coherence", "step_coherence")}
            scores |= {"numerical_precision": rng.randint(1, 5), "signal_to_noise": rng.randint(1, 5)}
            j.write(json.dumps({"trace_id": tid, "outcome": rng.random() < 0.5, **scores}) + "\n")
    return traces, judgments


def test_full_disk_an_import_writes_all_its_tables_or_none(tmpfs, tmp_path, capsys):
    traces, judgments = import_files(tmp_path, 1500)
    # the tables' sizes on a roomy disk: the small one gets room for the first table only
    probe = tmp_path / "probe"
    code, err = cli(
        capsys, "pairs", "import", "--traces", str(traces), "--judgments", str(judgments), "-w", str(probe)
    )
    assert code == 0, err
    pages = {p.parent.name: -(-p.stat().st_size // 4096) for p in probe.glob("tables/*/data.parquet")}
    assert pages["traces"] > 2 * pages["judgments"] > 4
    disk = tmpfs.mount("disk", f"{4 * (pages['traces'] + pages['judgments'] // 2)}k")
    ws = disk / "ws"
    args = ("pairs", "import", "--traces", str(traces), "--judgments", str(judgments), "-w", str(ws))
    code, err = cli(capsys, *args)
    assert code == 2
    assert "no space left" in one_error_line(err)
    assert not list(ws.glob("tables/*/*.parquet")), "a half-imported workspace"
    assert leftovers(disk) == []
    tmpfs.remount(disk, "size=16m")
    code, err = cli(capsys, *args)  # no --overwrite needed: nothing was imported
    assert code == 0, err
    assert {p.parent.name for p in ws.glob("tables/*/data.parquet")} == {"traces", "judgments", "generators"}
    assert len(Workspace(ws).read_table("judgments")) == 1500


# ---- read-only, no permission, impossible paths ------------------------------------------------


def test_read_only_workspace_fails_in_one_line_and_works_once_writable(tmpfs, tmp_path, capsys):
    disk = tmpfs.mount("disk", "16m")
    spec = problems_spec(tmp_path, 20)
    ws = disk / "ws"
    assert cli(capsys, "problems", "-c", str(spec), "-w", str(ws))[0] == 0
    before = sorted(p.relative_to(disk) for p in disk.rglob("*"))
    tmpfs.remount(disk, "ro")
    code, err = cli(capsys, "problems", "-c", str(spec), "-w", str(ws), "--force")
    assert code == 2
    line = one_error_line(err)
    assert f"cannot write {ws}" in line and "read-only" in line and "remount it writable" in line
    code, err = cli(capsys, "problems", "-c", str(spec), "-w", str(disk / "fresh"))
    assert code == 2
    assert f"cannot create the folder {disk / 'fresh'}: the file system is read-only" in one_error_line(err)
    assert sorted(p.relative_to(disk) for p in disk.rglob("*")) == before
    tmpfs.remount(disk, "rw")
    code, err = cli(capsys, "problems", "-c", str(spec), "-w", str(ws), "--force")
    assert code == 0, err
    assert leftovers(disk) == []


def _drop_dac_override() -> None:  # pragma: no cover - runs in the child process
    """As root, make permission bits apply to the child (root otherwise ignores them)."""
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (1, 2, 3):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER
        if libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def run_as_user(*args: str) -> subprocess.CompletedProcess[str]:
    """The CLI in a subprocess that permission bits bind (root: without CAP_DAC_OVERRIDE)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    pre: Callable[[], None] | None = _drop_dac_override if os.geteuid() == 0 else None
    try:
        return subprocess.run(
            [*PREFDELTA, *args], capture_output=True, text=True, env=env, preexec_fn=pre, timeout=300
        )
    except subprocess.SubprocessError as err:
        pytest.skip(f"cannot drop CAP_DAC_OVERRIDE for the child process: {err}")


def test_no_permission_fails_in_one_line_and_works_once_permitted(tmp_path):
    spec = problems_spec(tmp_path, 20)
    ws = tmp_path / "ws"
    ws.mkdir()
    ws.chmod(0o555)
    try:
        proc = run_as_user("problems", "-c", str(spec), "-w", str(ws))
    finally:
        ws.chmod(0o755)
    if proc.returncode == 0:
        pytest.skip("permission bits do not bind this user here (a root without capability bounding)")
    assert proc.returncode == 2, proc.stderr
    line = one_error_line(proc.stderr)
    assert f"cannot write {ws / 'spec.yaml'}: permission denied; make the folder writable" in line
    assert list(ws.iterdir()) == []
    proc = run_as_user("problems", "-c", str(spec), "-w", str(ws))
    assert proc.returncode == 0, proc.stderr
    assert leftovers(ws) == []


def test_a_workspace_under_a_regular_file_fails_in_one_line(tmp_path, capsys):
    blocker = tmp_path / "notes.txt"
    blocker.write_text("a file, not a folder")
    spec = problems_spec(tmp_path, 5)
    code, err = cli(capsys, "problems", "-c", str(spec), "-w", str(blocker / "ws"))
    assert code == 2
    line = one_error_line(err)
    assert f"cannot create the folder {blocker / 'ws'}: {blocker} is a regular file, not a folder" in line
    assert blocker.read_text() == "a file, not a folder"
    code, err = cli(capsys, "problems", "-c", str(spec), "-w", str(tmp_path / "ws"))
    assert code == 0, err


# ---- the write layer and the messages -----------------------------------------------------------


def test_a_library_hiding_the_os_error_in_its_message_still_gets_the_one_line():
    err = RuntimeError(
        'Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: "No space left on device" })'
    )
    disk = disk_error(err, "/w/models/m", "save the model")
    assert isinstance(disk, DiskError)
    assert str(disk).startswith("cannot save the model /w/models/m: no space left on the device;")
    assert disk_error(RuntimeError("process exited with code 1")) is None
    assert disk_error(ValueError("bad value")) is None
    assert "read-only" in str(disk_error(OSError(errno.EROFS, "Read-only file system", "/x")))


def test_a_failed_model_save_removes_its_tmp_folder(tmp_path, monkeypatch):
    from prefdelta.checkpoints import save_model

    class Model:
        def save_pretrained(self, path: Path) -> None:
            Path(path).mkdir()
            (Path(path) / "model.safetensors").write_bytes(b"half")
            raise OSError(errno.ENOSPC, "No space left on device")

    out = tmp_path / "models" / "m"
    out.parent.mkdir()
    with pytest.raises(DiskError, match=rf"cannot save the model {out}: no space left"):
        save_model(Model(), None, out)
    assert list(out.parent.iterdir()) == []


def test_non_utf8_config_files_fail_in_one_line_naming_the_file(tmp_path, capsys):
    bad = b"name: caf\xe9\n"
    spec = tmp_path / "spec.yaml"
    spec.write_bytes(bad)
    code, err = cli(capsys, "run", str(spec), "--dry-run", "-w", str(tmp_path / "ws"))
    assert code == 2
    assert one_error_line(err) == f"error: {spec}: not UTF-8 text (byte 9); save the spec as UTF-8"
    suite = tmp_path / "suite.yaml"
    suite.write_bytes(b"name: s\nbenchmarks: caf\xe9\n")
    with_suite = write_spec(
        tmp_path / "with-suite.yaml",
        {
            "name": "u",
            "problems": [{"source": "arith", "split": "pairs", "n": 4}],
            "eval": {"suites": [str(suite)]},
        },
    )
    code, err = cli(capsys, "run", str(with_suite), "--dry-run", "-w", str(tmp_path / "ws"))
    assert code == 2
    assert f"{suite}: not UTF-8 text (byte 23); save the suite as UTF-8" in one_error_line(err)
    from prefdelta.errors import UserError
    from prefdelta.generate.prompts import load_template
    from prefdelta.judge.rubric import load_rubric

    for load, what in ((load_rubric, "rubric"), (load_template, "prompt template")):
        path = tmp_path / f"{what.replace(' ', '-')}.yaml"
        path.write_bytes(bad)
        with pytest.raises(
            UserError, match=rf"^{path}: not UTF-8 text \(byte 9\); save the {what} as UTF-8$"
        ):
            load(path)


def test_tables_on_disk_keep_their_old_content_when_a_rewrite_fails(tmp_path, monkeypatch):
    ws = Workspace(tmp_path)
    ws.write_table("problems", pd.DataFrame({"problem_id": ["a"], "prompt": ["1+1"]}))
    real = os.fsync

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(DiskError):
        ws.write_table("problems", pd.DataFrame({"problem_id": ["b"], "prompt": ["2+2"]}))
    monkeypatch.setattr(os, "fsync", real)
    assert ws.read_table("problems")["problem_id"].tolist() == ["a"]
    assert leftovers(tmp_path) == []
