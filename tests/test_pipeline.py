"""One pipeline: the stage table, cache keys that cannot go stale, no silent drops from the
spec to the run-time objects, the dry-run plan, and bad input that exits 2 in one line."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from conftest import ROOT, run_stage, spec_from, template_data
from prefdelta.errors import UserError
from prefdelta.study.codehash import closure, code_version
from prefdelta.study.stages import BY_NAME, STAGES
from prefdelta.workspace import Workspace

SRC = ROOT / "src" / "prefdelta"


# ---- the stage table ------------------------------------------------------------------------------


def test_stage_table_drives_the_cli_and_every_stage_owns_its_package():
    from typer.main import get_command

    from prefdelta.cli import app

    commands = get_command(app).commands  # type: ignore[attr-defined]
    assert [s.name for s in STAGES] == [
        "problems", "zoo", "generate", "judge", "pairs", "select", "train", "eval", "report",
    ]  # fmt: skip
    for stage in STAGES:
        assert stage.name in commands
        assert commands[stage.name].help.startswith(stage.help.split(".")[0])
        package = stage.module.rsplit(".", 1)[0]
        assert stage.module == f"{package}.stage"  # body and config live together
        if stage.name not in ("report",):
            assert (SRC / package.split(".", 1)[1] / "config.py").is_file() or stage.name == "select"


def test_no_stage_imports_the_arith_world_at_import_time():
    code = (
        "import sys, prefdelta.study.stages, prefdelta.cli; "
        "print(any(m.startswith('prefdelta.worlds') or m == 'prefdelta.judge.oracle' for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


# ---- cache keys -----------------------------------------------------------------------------------


def test_code_closure_follows_imports_two_steps_away_and_nothing_unrelated():
    select = {m for m, _ in closure("prefdelta.select.stage")}
    # select.stage -> select.strategies -> pairs.config: two imports away
    assert {"prefdelta.select.strategies", "prefdelta.pairs.config"} <= select
    assert "prefdelta.report.markdown" not in select and "prefdelta.train.trainer" not in select
    problems = {m for m, _ in closure("prefdelta.problems.stage")}
    assert "prefdelta.sources.arith" in problems  # a registry entry, named by a string literal
    train = {m for m, _ in closure("prefdelta.train.stage")}
    assert {
        "prefdelta.train.trainer",
        "prefdelta.train.losses",
        "prefdelta.train.logprobs",
    } <= train  # lazy imports


def test_closure_of_a_package_with_relative_lazy_and_type_checking_imports(tmp_path, monkeypatch):
    pkg = tmp_path / "prefdelta_x"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from .sub import b\n")
    (pkg / "sub" / "b.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from prefdelta_x import d\n"
        "def f():\n    from prefdelta_x.sub import c\n"
    )
    (pkg / "sub" / "c.py").write_text("X = 1\n")
    (pkg / "d.py").write_text("Y = 2\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr("prefdelta.study.codehash.PACKAGE", "prefdelta_x")
    monkeypatch.setattr(
        "prefdelta.study.codehash._MODULE", __import__("re").compile(r"^prefdelta_x(\.[a-z_]+)+$")
    )
    closure.cache_clear()
    try:
        names = {m for m, _ in closure("prefdelta_x.a")}
    finally:
        closure.cache_clear()
    assert names == {
        "prefdelta_x",
        "prefdelta_x.a",
        "prefdelta_x.sub",
        "prefdelta_x.sub.b",
        "prefdelta_x.sub.c",
    }


def test_code_version_changes_when_a_file_of_the_closure_changes(tmp_path):
    before = code_version("prefdelta.select.stage")
    assert before == code_version("prefdelta.select.stage")
    assert before != code_version("prefdelta.pairs.stage")


@pytest.mark.integration
def test_an_edit_two_imports_away_reruns_the_stage(tmp_path):
    """A copy of the package: select runs, is skipped, then re-runs after an edit of
    pairs/config.py (select.stage -> select.strategies -> pairs.config); an edit of a module
    outside its closure leaves it skipped."""
    from test_pairs import synth

    copy = tmp_path / "pkg"
    shutil.copytree(SRC, copy / "prefdelta", ignore=shutil.ignore_patterns("__pycache__"))
    ws = tmp_path / "ws"
    traces, judgments, gens = synth(n_problems=8, gens=("a", "b"))
    w = Workspace(ws)
    for name, df in (("traces", traces), ("judgments", judgments), ("generators", gens)):
        w.write_table(name, df)
    env = {**os.environ, "PYTHONPATH": str(copy), "OMP_NUM_THREADS": "1"}
    code = "from prefdelta.cli import main; import sys; main(sys.argv[1:])"

    def stage(name: str) -> str:
        proc = subprocess.run(
            [sys.executable, "-c", code, name, "-w", str(ws)],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
        )
        assert proc.returncode == 0, proc.stderr
        return proc.stderr

    assert "pairs: done" in stage("pairs")
    assert "select: done" in stage("select")
    assert "select: up to date" in stage("select")
    with open(copy / "prefdelta" / "report" / "markdown.py", "a") as f:
        f.write("\n# an edit outside select's code\n")
    assert "select: up to date" in stage("select")
    with open(copy / "prefdelta" / "pairs" / "config.py", "a") as f:
        f.write("\n# an edit two imports away from the select stage\n")
    assert "select: done" in stage("select")
    assert "select: up to date" in stage("select")


# ---- no silent drops ------------------------------------------------------------------------------


def _non_default(name: str, field) -> object:
    import typing

    annotation = field.annotation
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) is typing.Literal:
        return next(a for a in args if a != field.default)
    if typing.get_origin(annotation) is list:  # a list of choices: the first one
        return [typing.get_args(args[0])[0]]
    kinds = [a for a in args if a is not type(None)] or [annotation]
    kind = kinds[0]
    if typing.get_origin(kind) is typing.Literal:
        return next(a for a in typing.get_args(kind) if a != field.default)
    if name == "algorithm":  # a registered loss's name (prefdelta.train.losses)
        return "kto"
    if name == "dynamic":  # a nested section: every field off its default
        from prefdelta.train.config import DynamicConfig

        return DynamicConfig(fraction=0.2, key="outcome", every_epochs=2, margin_weight=0.5, pool="top")
    if kind is bool:
        return not field.default
    if kind is int:
        return (field.default or 0) + 3 if name != "batch_size" else 6
    if kind is float:
        return round((field.default or 0.0) * 0.5 + 0.01, 4)
    raise AssertionError(f"no test value for {name}: {annotation}")


def test_every_hyper_parameter_reaches_the_trainer(tmp_path):
    """Each field of one run, set in a spec, arrives in the run's TrainHyper, survives the
    --hyper JSON of `accelerate launch`, and is read by the training code."""
    from prefdelta.train.config import Hyper, TrainHyper
    from prefdelta.train.launch import parse_hyper

    values = {name: _non_default(name, f) for name, f in Hyper.model_fields.items()}
    values["algorithm"], values["batch_size"] = "kto", 6
    dynamic = values.pop("dynamic")  # refuses save_steps > 0: checked on its own below
    data = {"student": {"model": "m", "lora": {"r": 8, "alpha": 32, "dropout": 0.05, "target_modules": ["q_proj"], "merge": False}},
            "train": {**values, "seeds": [7]}}  # fmt: skip
    cfg = spec_from(data)
    ((_name, hyper),) = cfg.train.hyper_sets().items()
    hp = cfg.train.run_hyper(hyper, 7, cfg.student.lora)
    for field, value in values.items():
        assert getattr(hp, field) == value, field
    assert hp.seed == 7 and hp.lora == cfg.student.lora and hp.lora.dropout == 0.05
    assert parse_hyper(hp.model_dump_json()) == hp
    dyn_cfg = spec_from(
        {"student": {"model": "m"}, "train": {"dynamic": dynamic.model_dump(), "save_steps": 0}}
    )
    ((_name, dyn_hyper),) = dyn_cfg.train.hyper_sets().items()
    assert dyn_cfg.train.run_hyper(dyn_hyper, 0, dyn_cfg.student.lora).dynamic == dynamic
    assert set(TrainHyper.model_fields) == set(Hyper.model_fields) | {"seed", "lora"}
    code = "".join(f.read_text() for f in sorted((SRC / "train").rglob("*.py")))
    unread = [f for f in TrainHyper.model_fields if f"hp.{f}" not in code]
    assert not unread, f"fields no training code reads: {unread}"
    unread_lora = [
        f for f in ("r", "alpha", "dropout", "target_modules", "merge") if f"hp.lora.{f}" not in code
    ]
    assert not unread_lora


def test_every_sampling_and_judge_setting_reaches_its_backend():
    from prefdelta.generate.config import GenerateConfig, GeneratorSpec, SamplingSpec
    from prefdelta.judge.config import LLMJudgeSettings

    g = GenerateConfig(samples=3, temperature=0.3, top_p=0.9, max_tokens=77, stop=["X"], seed=5)
    spec = GeneratorSpec(id="x", model="m", sampling={"temperature": 0.1})
    s = spec.sampling_for(g.sampling())
    assert s == SamplingSpec(samples=3, temperature=0.1, top_p=0.9, max_tokens=77, stop=["X"], seed=5)
    judge_code = (SRC / "judge" / "stage.py").read_text()
    for field in LLMJudgeSettings.model_fields:
        assert f"settings.{field}" in judge_code or field in ("judge_id",), field
    factory = (SRC / "generate" / "factory.py").read_text()
    for group, fields in (("o", ("device", "dtype", "batch_size", "max_batch_size")),
                          ("v", ("tensor_parallel_size", "data_parallel_size", "dtype", "gpu_memory_utilization", "max_model_len", "llm_kwargs"))):  # fmt: skip
        for f in fields:
            assert f"{group}.{f}" in factory, f


# ---- the plan ------------------------------------------------------------------------------------


def test_dry_run_counts_the_work_and_writes_nothing(tmp_path, capsys):
    from prefdelta.cli import main

    ws = tmp_path / "ws"
    main(["run", "--template", "demo", "--dry-run", "-w", str(ws)])
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines()[1:]}
    assert list(lines) == [s.name for s in STAGES]
    assert "300 problems" in lines["problems"]
    assert "4,200 generation requests" in lines["generate"]  # 7 generators × 300 problems × 2 samples
    assert "268,800 completion tokens at most" in lines["generate"]
    assert "4,200 traces" in lines["judge"]
    assert "13 selections" in lines["select"]  # ladder 5 rungs, mirror 3, grid 2 keys × top/random + all
    assert "39 training runs" in lines["train"]  # × 3 seeds
    assert not (ws / "tables").exists()


@pytest.mark.integration
def test_dry_run_of_a_finished_study_says_cached(tmp_path, capsys):
    from prefdelta.cli import main

    tiny = ROOT / "tests" / "data" / "tiny_study.yaml"
    ws = tmp_path / "ws"
    main(["run", str(tiny), "-w", str(ws)])
    capsys.readouterr()
    main(["run", str(tiny), "-w", str(ws), "--dry-run"])
    assert [line.split()[1] for line in capsys.readouterr().out.splitlines()[1:]] == ["cached"] * len(STAGES)
    main(["run", str(tiny), "-w", str(ws), "--dry-run", "--set", "select.fraction=0.25"])
    status = {line.split()[0]: line.split()[1] for line in capsys.readouterr().out.splitlines()[1:]}
    assert [k for k, v in status.items() if v == "cached"] == [
        "problems",
        "zoo",
        "generate",
        "judge",
        "pairs",
    ]


# ---- bad input: exit 2, one line, nothing half-written ----------------------------------------------


def _exit_2(capsys, *args: str) -> str:
    from prefdelta.cli import main

    with pytest.raises(SystemExit) as err:
        main(list(args))
    assert err.value.code == 2
    msg = capsys.readouterr().err.strip()
    assert msg.startswith("error: ") and "\n" not in msg and "Traceback" not in msg
    return msg


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("problems.0.source=gsm9k", r"field 'problems.0.source': unknown problem source 'gsm9k'"),
        ("generators.1=llama-nope", r"field 'generators.1': 'llama-nope' is not a zoo model"),
        ("judge.kind=vibes", r"field 'judge.judges.0.kind'"),
        ("eval.suites.0={suite: no_such_suite}", r"unknown suite 'no_such_suite'"),
        (
            "problems=[{source: gsm8k, n: 3}]",
            r"judge.judges.0.kind': the oracle judge exists only in the arith world",
        ),
        (
            "generators.0={id: x, backend: openai, server: nowhere}",
            r"generators.0.server'?: 'nowhere' is not in servers",
        ),
    ],
)
def test_bad_spec_exits_2_naming_the_field(tmp_path, capsys, override, expected):
    import re

    msg = _exit_2(capsys, "run", "--template", "demo", "--dry-run", "-w", str(tmp_path), "--set", override)
    assert re.search(expected, msg), msg


def test_a_student_that_does_not_load_and_a_server_that_is_down(tmp_path, capsys, shared_datasets):
    ws = tmp_path / "ws"
    data = {
        "data_dir": str(shared_datasets),
        "problems": [{"source": "gsm8k", "split": "train", "n": 2}],
        "generators": [
            {
                "id": "down",
                "backend": "openai",
                "model": "m",
                "openai": {"base_urls": ["http://127.0.0.1:9/v1"]},
            }
        ],
        "student": {"model": str(tmp_path / "no-such-model")},
    }
    spec = tmp_path / "s.yaml"
    spec.write_text(json.dumps(data))
    msg = _exit_2(capsys, "run", str(spec), "-w", str(ws))
    assert "generators (down).openai.base_urls: no server answers at http://127.0.0.1:9/v1" in msg
    assert not Workspace(ws).has_table("traces")  # nothing half-written
    cfg = spec_from(data)
    with pytest.raises(UserError, match=r"student\.model: folder .*no-such-model not found"):
        from prefdelta.train.stage import resolve_student

        resolve_student(Workspace(ws), cfg)
    folder = tmp_path / "not-a-model"
    folder.mkdir()
    cfg = spec_from({**data, "student": {"model": str(folder)}})
    with pytest.raises(UserError, match=r"student\.model: .*not-a-model is not a save_pretrained folder"):
        resolve_student(Workspace(ws), cfg)


def test_oracle_on_a_non_arith_problem_in_the_table(tmp_path, shared_datasets):
    """A workspace whose problems are real, judged by the oracle anyway (a spec with no
    problems section): a clear error naming the problem, not a crash."""
    from prefdelta.sources.registry import load_source

    ws = Workspace(tmp_path / "ws")
    problems = load_source("gsm8k", "test", shared_datasets).head(1)
    ws.write_table("problems", problems)
    ws.write_table("traces", problems[["problem_id"]].assign(trace_id="t0", generator_id="g", text="#### 1"))
    with pytest.raises(
        UserError, match=r"oracle judge scores arith problems only; problem 'gsm8k-test-00000'"
    ):
        run_stage(ws, spec_from({"judge": {"kind": "oracle"}}), "judge")
    assert not ws.has_table("judgments")


def test_stage_commands_default_to_the_workspace_spec(tmp_path):
    """After `run`, a stage command needs no -c: it reads <workspace>/spec.yaml."""
    data = template_data("demo")
    cfg = spec_from(data)
    from prefdelta.study.runner import run_study

    ws = Workspace(tmp_path / "ws")
    run_study(ws, cfg, stages=(BY_NAME["problems"],))
    from prefdelta.cli.common import stage_spec

    again, _ = stage_spec(None, ws.root)
    assert again == cfg
    changed, _ = stage_spec(None, ws.root, ["select.fraction=0.5"])
    assert changed.select.fraction == 0.5 and changed.problems == cfg.problems


def test_stage_commands_resolve_extends_like_run(tmp_path):
    """`prefdelta zoo -c spec.yaml` on a spec that extends a template is the spec `run` sees."""
    from prefdelta.cli.common import stage_spec
    from prefdelta.study.spec import load_spec

    spec = tmp_path / "mine.yaml"
    spec.write_text("extends: demo\nname: mine\ntrain: {seeds: [5]}\n")
    cfg, _ = stage_spec(spec, tmp_path / "ws")
    assert cfg == load_spec(spec)
    assert (
        cfg.name == "mine"
        and cfg.train.seeds == [5]
        and cfg.zoo.models == load_spec(template="demo").zoo.models
    )


def test_readme_and_docs_name_no_removed_command():
    removed = ["generate run", "generate problems", "pairs build", "select make", "train run", "eval run ",
               "eval lm-eval", "study/stages/", "settings/", "prefdelta/config.py", "data/configs"]  # fmt: skip
    texts = {p: p.read_text() for p in [ROOT / "README.md", *(ROOT / "docs").glob("*.md")]}
    found = [(p.name, r) for p, t in texts.items() for r in removed if f"prefdelta {r}" in t or f"/{r}" in t]
    assert not found, found


def test_gpu_example_specs_validate_and_plan(tmp_path, capsys, shared_datasets, monkeypatch):
    """The example specs for GPU machines load and plan with --dry-run (nothing is loaded or started)."""
    from prefdelta.cli import main
    from prefdelta.study.spec import load_spec

    monkeypatch.setenv("PREFDELTA_DATA_DIR", str(shared_datasets))
    specs = sorted((ROOT / "configs").glob("gpu-*.yaml"))
    assert specs, "no GPU example specs"
    for path in specs:
        cfg = load_spec(path)
        assert cfg.generators and cfg.student.model and cfg.eval.suites
        assert any(g.backend == "vllm" for g in cfg.generators)
        main(["run", str(path), "--dry-run", "-w", str(tmp_path / path.stem)])
        out = capsys.readouterr().out
        assert "generation requests" in out and "training runs" in out, out
        assert not (tmp_path / path.stem / "tables").exists()


@pytest.mark.integration
def test_accelerate_launcher_trains_a_study_run_on_two_processes(tmp_path):
    """train.launcher: accelerate — the study starts `accelerate launch` (2 CPU processes) and
    collects the run; it ends where the in-process run ends."""
    import yaml

    from prefdelta.study.runner import run_study

    data = yaml.safe_load((ROOT / "tests" / "data" / "tiny_study.yaml").read_text())
    data["train"].update(selections=["all"], seeds=[0], variants={}, epochs=1)
    data["eval"]["suites"] = []
    ws = Workspace(tmp_path / "ws")
    run_study(ws, spec_from(data))
    local = ws.read_table("runs").iloc[0]
    data["train"]["launcher"] = {"kind": "accelerate", "config": "cpu_ddp_2"}
    run_study(ws, spec_from(data), stages=(BY_NAME["train"],))
    runs = ws.read_table("runs")
    assert list(runs["launcher"]) == ["accelerate"]
    run = runs.iloc[0]
    assert run["run_id"] != local["run_id"]  # another launcher is another run
    assert (ws.runs_dir / run["run_id"] / "launch.log").is_file()
    assert (ws.resolve(run["checkpoint"]) / "config.json").is_file()
    assert run["final_loss"] == pytest.approx(local["final_loss"], abs=1e-4)


def test_one_off_options_do_not_become_the_workspace_spec(tmp_path):
    from prefdelta.cli.common import run_one, stage_spec
    from prefdelta.study.spec import SPEC_FILE

    data = template_data("demo")
    spec = tmp_path / "study.yaml"
    import yaml

    spec.write_text(yaml.safe_dump(data))
    ws = tmp_path / "ws"
    run_one("problems", spec, ws, False, None)  # -c: recorded
    recorded = (ws / SPEC_FILE).read_text()
    run_one("problems", None, ws, False, ["problems.0.n=5"])  # a one-off override: not recorded
    assert (ws / SPEC_FILE).read_text() == recorded
    assert len(Workspace(ws).read_table("problems")) == 5
    cfg, _ = stage_spec(None, ws)
    assert cfg.problems[0].n == 300
