"""Every case of the bad-input corpus (``tests/bad_inputs.py``) is refused by the CLI with
exit 2 and one line naming file, line and field, and leaves no table behind."""

from __future__ import annotations

import pytest

from bad_inputs import (
    CASES,
    GOOD_IMPORT,
    GOOD_PROBLEMS,
    IMPORT_CMD,
    IMPORT_TABLES,
    PROBLEMS_CMD,
    BadInput,
    write_files,
)
from prefdelta.cli import main
from prefdelta.workspace import Workspace

pytestmark = pytest.mark.chaos  # the bad-input part of the chaos suite (make chaos)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_is_refused_with_its_place_and_nothing_written(case: BadInput, tmp_path, capsys):
    folder, ws = tmp_path / "in", tmp_path / "ws"
    write_files(case.files, folder)
    with pytest.raises(SystemExit) as exc:
        main(case.args(folder, ws))
    assert exc.value.code == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    message = lines[0]
    assert str(folder / case.file) in message, message
    assert f"{case.line}:" in message or f"{case.line} " in message, message
    assert f"'{case.field}'" in message, message
    written = [t for t in case.tables if Workspace(ws).has_table(t)]
    assert written == [], f"{case.name}: tables written despite the error: {written}"


@pytest.mark.parametrize(
    ("files", "command", "tables"),
    [(GOOD_IMPORT, IMPORT_CMD, IMPORT_TABLES), (GOOD_PROBLEMS, PROBLEMS_CMD, ("problems",))],
    ids=["import", "problems"],
)
def test_the_uncorrupted_inputs_are_accepted(files, command, tables, tmp_path, capsys):
    """Each case differs from these by one corruption, so its refusal is that corruption's."""
    folder, ws = tmp_path / "in", tmp_path / "ws"
    write_files(files, folder)
    main(command.format(dir=folder, ws=ws).split())
    assert all(Workspace(ws).has_table(t) for t in tables)


def test_null_scores_mean_not_scored_and_are_accepted(tmp_path, capsys):
    """A null score (outcome-only judgments) is not corrupt: only NaN, inf and the like are."""
    files = {name: [dict(r) for r in rows] for name, rows in GOOD_IMPORT.items()}
    for row in files["judgments.jsonl"]:
        row["factuality"] = None
    folder, ws = tmp_path / "in", tmp_path / "ws"
    write_files(files, folder)  # type: ignore[arg-type]
    main(IMPORT_CMD.format(dir=folder, ws=ws).split())
    assert Workspace(ws).read_table("judgments")["factuality"].isna().all()


def test_an_import_keeps_no_half_of_a_failed_write(tmp_path, capsys, monkeypatch):
    """The tables of an import are renamed into place together: a failure while staging the
    last one leaves none of them (not only validation errors are all or nothing)."""
    import prefdelta.workspace as workspace

    folder, ws = tmp_path / "in", tmp_path / "ws"
    write_files(GOOD_IMPORT, folder)
    real = workspace.stage_bytes
    staged: list[str] = []

    def fail_on_the_third(path, data):
        staged.append(path.parent.name)
        if len(staged) == 3:
            raise OSError(28, "No space left on device")
        return real(path, data)

    monkeypatch.setattr(workspace, "stage_bytes", fail_on_the_third)
    with pytest.raises(SystemExit) as exc:
        main(IMPORT_CMD.format(dir=folder, ws=ws).split())
    assert exc.value.code == 2 and len(staged) == 3
    assert [t for t in IMPORT_TABLES if Workspace(ws).has_table(t)] == []


def test_fields_no_stage_reads_are_dropped_not_refused(tmp_path, capsys):
    files = {name: [dict(r) for r in rows] for name, rows in GOOD_IMPORT.items()}
    for row in files["traces.jsonl"]:
        row["annotator_note"] = "checked by hand"
    folder, ws = tmp_path / "in", tmp_path / "ws"
    write_files(files, folder)  # type: ignore[arg-type]
    main(IMPORT_CMD.format(dir=folder, ws=ws).split())
    assert "annotator_note" not in Workspace(ws).read_table("traces").columns
    assert "annotator_note" in capsys.readouterr().err  # said, not silent
