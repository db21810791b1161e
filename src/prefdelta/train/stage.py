"""Stage: train — the student on every selection named in ``train.selections``, for every
variant and seed; writes ``runs``.

The student is a zoo id, a ``save_pretrained`` folder or a hub id, trained in full or
with LoRA (``student.lora``). Prompts are what the student would see for each problem:
the source's template, through the student's chat template when it has one. Reference
log-probs are shared across runs through ``<workspace>/cache/refcache``. A run whose
``final/`` exists is reused; a killed one resumes from its checkpoint. With
``train.launcher.kind: accelerate`` each run is started as ``accelerate launch
--config_file <config> -m prefdelta.train.launch …`` (DDP / FSDP / DeepSpeed) and
collected from its folder.
"""

from __future__ import annotations

import contextlib
import json
import logging
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from prefdelta.errors import UserError
from prefdelta.hashing import stable_hash
from prefdelta.select import strategies as select_mod
from prefdelta.study.stage import Estimate, Stage, StageContext, StageOutput
from prefdelta.train.adapters import relocatable_adapter
from prefdelta.train.config import LauncherConfig, TrainHyper
from prefdelta.workspace import Workspace

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from prefdelta.study.spec import StudyConfig


def resolve_student(ws: Workspace, cfg: StudyConfig) -> tuple[str, str, str]:
    """(model id, path or hub id, identity key) of the student."""
    model = cfg.student.model
    if model is None:
        raise UserError("student.model: the spec names no student (a zoo id, a folder or a hub id)")
    if cfg.is_zoo(model):
        zoo = ws.read_table("zoo", required_by="train").set_index("generator_id")
        if model not in zoo.index:
            raise UserError(f"student.model: {model!r} is not in the zoo table; run the zoo stage first")
        return model, str(ws.resolve(zoo.at[model, "path"])), str(zoo.at[model, "key"])
    path = Path(model).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise UserError(f"student.model: {path} is not a save_pretrained folder (no config.json)")
        from prefdelta.evaluate.models import folder_hash

        return path.name, str(path.resolve()), folder_hash(path)
    if model.startswith((".", "/", "~")):
        raise UserError(f"student.model: folder {model} not found")
    return model, model, stable_hash("hub", model)


def student_prompts(model_path: str, problems: pd.DataFrame, problem_ids: list[str]) -> list[str]:
    """The prompt the student sees for each problem: its source's template, rendered with the
    student's chat template when it has one (else the plain completion prompt)."""
    from transformers import AutoTokenizer

    from prefdelta.generate.prompts import template_for_source

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    chat = bool(getattr(tokenizer, "chat_template", None))
    out = []
    for pid in problem_ids:
        row = problems.loc[pid]
        template = template_for_source(str(row["source"]))
        if chat:
            text = tokenizer.apply_chat_template(
                list(template.messages(str(row["prompt"]))), add_generation_prompt=True, tokenize=False
            )
        else:
            text = template.text(str(row["prompt"]))
        out.append(text)
    return out


def accelerate_config(launcher: LauncherConfig) -> Path:
    """The accelerate config file a launcher names (packaged name or path)."""
    assert launcher.config is not None
    packaged = resources.files("prefdelta").joinpath(f"data/accelerate/{launcher.config}.yaml")
    if packaged.is_file():
        return Path(str(packaged))
    path = Path(launcher.config).expanduser()
    if not path.is_file():
        names = sorted(
            p.name.removesuffix(".yaml")
            for p in resources.files("prefdelta").joinpath("data/accelerate").iterdir()
        )
        raise UserError(
            f"train.launcher.config: {launcher.config!r} is neither a packaged config ({', '.join(names)}) nor a file"
        )
    return path


def launch_accelerate(
    launcher: LauncherConfig,
    model_path: str,
    prompts: list[str],
    chosen: list[str],
    rejected: list[str],
    hp: TrainHyper,
    run_dir: Path,
    ref_cache: Path,
) -> None:
    """One run under ``accelerate launch``; its output goes to ``<run>/launch.log``."""
    run_dir.mkdir(parents=True, exist_ok=True)
    pairs_file = run_dir / "pairs.jsonl"
    with open(pairs_file, "w") as f:
        for p, c, r in zip(prompts, chosen, rejected, strict=True):
            f.write(json.dumps({"prompt": p, "chosen": c, "rejected": r}) + "\n")
    exe = Path(sys.executable).with_name("accelerate")
    cmd = [
        str(exe) if exe.exists() else "accelerate",
        "launch",
        "--config_file",
        str(accelerate_config(launcher)),
    ]
    if launcher.num_processes:
        cmd += ["--num_processes", str(launcher.num_processes)]
    cmd += [*launcher.args, "-m", "prefdelta.train.launch", "--model", model_path, "--pairs", str(pairs_file)]
    cmd += ["--out", str(run_dir), "--hyper", hp.model_dump_json(), "--ref-cache", str(ref_cache)]
    log = run_dir / "launch.log"
    with open(log, "wb") as out:
        proc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, check=False)
    if proc.returncode != 0:
        tail = log.read_text(errors="replace").strip().splitlines()[-1:] or ["(no output)"]
        raise UserError(f"train: accelerate launch exited with {proc.returncode} ({tail[0]}); see {log}")


@dataclass(frozen=True)
class PlannedRun:
    """One run of the stage: its identity and, when it is not trained yet, its inputs."""

    run_id: str
    variant: str
    hp: TrainHyper
    selection_id: str
    strategy: str
    n_pairs: int
    pair_ids: tuple[str, ...]


def plan_run(
    ws: Workspace, cfg: StudyConfig, student_key: str, variant: str, hp: TrainHyper,
    selection_id: str, strategy: str, chosen_pairs: pd.DataFrame, code: str,
) -> PlannedRun:  # fmt: skip
    key = stable_hash(
        student_key,
        hp.model_dump(),
        list(chosen_pairs.index),
        cfg.train.launcher.model_dump(),
        code,
        length=8,
    )
    return PlannedRun(
        f"{variant}-{selection_id}-seed{hp.seed}-{key}", variant, hp, selection_id, strategy,
        len(chosen_pairs), tuple(chosen_pairs.index),
    )  # fmt: skip


def is_done(run_dir: Path) -> bool:
    return (run_dir / "truncation.json").exists() and (run_dir / "final").is_dir()


def train_job(job: dict) -> None:
    """Train one run in process (the worker function of ``train.workers``); in the main
    process a live bar follows its steps (workers share the terminal, so they show none)."""
    import multiprocessing

    from prefdelta.train.dpo import step_progress, train_on_texts

    run_dir = Path(job["run_dir"])
    live = multiprocessing.parent_process() is None
    with step_progress(run_dir.name) if live else contextlib.nullcontext() as on_step:
        train_on_texts(
            job["model"], job["prompts"], job["chosen"], job["rejected"],
            TrainHyper.model_validate_json(job["hp"]), run_dir, on_step=on_step,
            ref_cache_root=Path(job["ref_cache"]), deltas=job.get("deltas"),
        )  # fmt: skip


def content_key(run_id: str) -> str:
    """The part of a run id that names what was trained (student, hyper-parameters, pairs, code)."""
    return run_id.rsplit("-", 1)[-1]


def twin_sources(run_ids: Iterable[str]) -> dict[str, str]:
    """Each run id → the first run id with the same content key (itself when it is the first)."""
    first: dict[str, str] = {}
    return {r: first.setdefault(content_key(r), r) for r in run_ids}


def split_twins(planned: list[PlannedRun], jobs: list[dict]) -> tuple[list[dict], list[tuple[str, str]]]:
    """Jobs to train, and (source, twin) run ids whose training would repeat the source's.

    Two cells can hold the same pairs under the same hyper-parameters: a random k% does not
    depend on the key it sits beside in a grid (``random:step_coherence:0.3`` and
    ``random:outcome:0.3`` draw the same pairs), so a grid of 7 keys has 7 copies of each
    random cell. Each is trained once; its twins get a hard-linked copy of the run folder.
    """
    sources = twin_sources(run.run_id for run in planned)
    train, twins = [], []
    for job in jobs:
        run_id = Path(job["run_dir"]).name
        source = sources[run_id]
        if source == run_id:
            train.append(job)
        else:
            twins.append((source, run_id))
    return train, twins


def link_twin(source: Path, twin: Path) -> None:
    """``twin`` as a hard-linked copy of the finished run ``source`` (written aside, then renamed)."""
    import os
    import shutil

    def link(src: str, dst: str) -> None:
        try:
            os.link(src, dst)
        except OSError:  # a file system without hard links
            shutil.copy2(src, dst)

    tmp = twin.with_name(twin.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(twin, ignore_errors=True)
    shutil.copytree(source, tmp, copy_function=link, ignore=shutil.ignore_patterns("checkpoint"))
    tmp.rename(twin)


def prewarm_reference(model_path: str, jobs: list[dict]) -> None:
    """Reference log-probs of every chosen and rejected completion, once, before parallel
    runs start (so that workers do not compute the same ones side by side); reference-free
    runs (SimPO, ORPO) need none."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from prefdelta.train.logprobs import encode_pairs
    from prefdelta.train.losses import get_loss
    from prefdelta.train.refcache import RefCache, model_key

    jobs = [j for j in jobs if get_loss(TrainHyper.model_validate_json(j["hp"]).algorithm).needs_reference]
    if not jobs:
        return
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    cache = RefCache(Path(jobs[0]["ref_cache"]), model_key(model_path))
    items = []
    for job in jobs:
        hp = TrainHyper.model_validate_json(job["hp"])
        pairs, _, _ = encode_pairs(
            tokenizer, job["prompts"], job["chosen"], job["rejected"], max_length=hp.max_length
        )
        items += [(p.prompt, p.chosen) for p in pairs] + [(p.prompt, p.rejected) for p in pairs]
    missing = cache.missing(items)
    if missing:
        model = AutoModelForCausalLM.from_pretrained(model_path)
        cache.compute(
            model, missing, pad, TrainHyper.model_validate_json(jobs[0]["hp"]).max_tokens_per_forward
        )


def run_row(
    ws: Workspace, cfg: StudyConfig, student: tuple[str, str, str], run: PlannedRun
) -> dict[str, object]:
    """The ``runs`` row of a finished run."""
    student_id, student_path, _ = student
    run_dir = ws.runs_dir / run.run_id
    trunc = json.loads((run_dir / "truncation.json").read_text())
    last = json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[-1])
    hp = run.hp
    return {
        "run_id": run.run_id,
        "algorithm": hp.algorithm,
        "variant": run.variant,
        "base_model": student_id,
        "base_path": ws.relative(student_path) if Path(student_path).exists() else student_path,
        "selection_id": run.selection_id,
        "strategy": run.strategy,
        "n_pairs": run.n_pairs,
        "pair_updates": int(last.get("pair_updates", run.n_pairs * hp.epochs)),
        "hyper": hp.model_dump_json(),
        "seed": hp.seed,
        "lora": hp.lora.r > 0,
        "adapter": hp.lora.r > 0 and not hp.lora.merge,
        "launcher": cfg.train.launcher.kind,
        "checkpoint": ws.relative(run_dir / "final"),
        "metrics": ws.relative(run_dir / "metrics.jsonl"),
        "final_loss": last["loss"],
        "final_margin": last["margin"],
        "n_truncated": int(trunc.get("truncated", 0)),
        "n_dropped": int(trunc.get("dropped", 0)),
        "onpolicy_chosen": trunc.get("logp_per_token_chosen", float("nan")),
        "onpolicy_rejected": trunc.get("logp_per_token_rejected", float("nan")),
    }


def dynamic_field(cfg: StudyConfig, variant: str) -> str:
    """Where a run's ``dynamic`` is set in the spec: a variant's, else the section's."""
    return f"train.variants.{variant}.dynamic" if variant in cfg.train.variants else "train.dynamic"


def pool_deltas(pool: pd.DataFrame, run: PlannedRun, field: str) -> list[float]:
    """The judged delta of ``train.dynamic.key`` of each pair of a dynamic run's pool."""
    assert run.hp.dynamic is not None
    col = select_mod.key_column(pool, run.hp.dynamic.key)
    missing = pool[col].isna()
    if missing.any():
        raise UserError(
            f"{field}.key: {int(missing.sum())} of the {len(pool)} pairs of "
            f"selection {run.selection_id} have no {col} (e.g. {pool.index[missing][0]}); choose a key every pair has"
        )
    return [float(v) for v in pool[col]]


def check_launcher(cfg: StudyConfig) -> None:
    """Dynamic runs decide their rounds in the trainer's process, with the pool's deltas:
    the in-process launcher only (``python -m prefdelta.train.launch`` reads no deltas)."""
    if cfg.train.launcher.kind == "in_process":
        return
    for name, hyper in cfg.train.hyper_sets().items():
        if hyper.dynamic is not None:
            raise UserError(
                f"{dynamic_field(cfg, name)}: dynamic selection runs with train.launcher.kind: in_process only "
                f"(got {cfg.train.launcher.kind})"
            )


def plan_jobs(
    ws: Workspace, cfg: StudyConfig, student: tuple[str, str, str], code: str
) -> tuple[list[PlannedRun], list[dict]]:
    """Every run of the spec (one per selection × variant × seed) and the jobs of those not
    trained yet (their texts, hyper-parameters and folders)."""
    tc = cfg.train
    sel = ws.read_table("selections", required_by="train")
    pairs = ws.read_table("pairs", required_by="train").set_index("pair_id")
    traces = ws.read_table("traces", required_by="train").set_index("trace_id")
    problems = (
        ws.read_table("problems", required_by="train").drop_duplicates("problem_id").set_index("problem_id")
    )
    hyper_sets = tc.hyper_sets()
    planned: list[PlannedRun] = []
    for name in tc.selections:
        found = [s for s in dict.fromkeys(sel["strategy"]) if select_mod.matches(s, name)]
        if not found:
            hint = " (set select.by_generator_pair: true)" if name == "gen" else ""
            raise UserError(
                f"train.selections: names {name!r}, but no such selection exists{hint} "
                f"(have: {', '.join(sorted(sel['strategy'].unique())[:20])})"
            )
        for strategy in found:
            ids = sel[sel["strategy"] == strategy]
            selection_id = ids["selection_id"].iloc[0]
            chosen_pairs = pairs.loc[ids["pair_id"]]
            for variant, hyper in hyper_sets.items():
                if hyper.dynamic is not None and not select_mod.matches(strategy, hyper.dynamic.pool):
                    continue  # a dynamic variant trains on its pool only
                for seed in tc.seeds:
                    hp = tc.run_hyper(hyper, seed, cfg.student.lora)
                    planned.append(
                        plan_run(ws, cfg, student[2], variant, hp, selection_id, strategy, chosen_pairs, code)
                    )
    planned = list({r.run_id: r for r in planned}.values())  # a cell named twice is one run
    for variant, hyper in hyper_sets.items():
        if hyper.dynamic is not None and not any(r.variant == variant for r in planned):
            raise UserError(
                f"{dynamic_field(cfg, variant)}.pool: {hyper.dynamic.pool!r} names none of the selections "
                f"train.selections trains on ({', '.join(sorted({r.strategy for r in planned})[:12])})"
            )
    jobs = []
    for run in planned:
        run_dir = ws.runs_dir / run.run_id
        if is_done(run_dir):
            continue
        chosen_pairs = pairs.loc[list(run.pair_ids)]
        dynamic = run.hp.dynamic is not None
        deltas = pool_deltas(chosen_pairs, run, dynamic_field(cfg, run.variant)) if dynamic else None
        jobs.append(
            {
                "model": student[1],
                "prompts": student_prompts(student[1], problems, list(chosen_pairs["problem_id"])),
                "chosen": traces.loc[chosen_pairs["chosen_trace_id"], "text"].tolist(),
                "rejected": traces.loc[chosen_pairs["rejected_trace_id"], "text"].tolist(),
                "hp": run.hp.model_dump_json(),
                "deltas": deltas,
                "run_dir": str(run_dir),
                "ref_cache": str(ws.cache_dir / "refcache"),
            }
        )
    return planned, jobs


def _job_cost(job: dict) -> float:
    """Pair-updates of a training job: what its time grows with."""
    return len(job["chosen"]) * TrainHyper.model_validate_json(job["hp"]).epochs


def body(ws: Workspace, cfg: StudyConfig, ctx: StageContext) -> StageOutput:
    tc = cfg.train
    if cfg.student.model is None:  # a study of generators, judges and pairs only
        ws.write_table(
            "runs", pd.DataFrame(columns=["run_id", "variant", "selection_id", "strategy", "base_model"])
        )
        return StageOutput(["runs"], [], "(no student in the spec: nothing to train)")
    student = resolve_student(ws, cfg)
    check_launcher(cfg)
    planned, jobs = plan_jobs(ws, cfg, student, ctx.code)
    jobs, twins = split_twins(planned, jobs)
    if tc.launcher.kind == "accelerate":
        for job in jobs:
            log.info(f"train: {Path(job['run_dir']).name}: accelerate launch ({tc.launcher.config})")
            launch_accelerate(
                tc.launcher, job["model"], job["prompts"], job["chosen"], job["rejected"],
                TrainHyper.model_validate_json(job["hp"]), Path(job["run_dir"]), Path(job["ref_cache"]),
            )  # fmt: skip
    else:
        from prefdelta.parallel import run_jobs

        if jobs and tc.workers > 1:
            prewarm_reference(student[1], jobs)
        run_jobs(train_job, jobs, tc.workers, "train: runs", cost=_job_cost)
    for source, twin in twins:
        link_twin(ws.runs_dir / source, ws.runs_dir / twin)
    for run in planned:  # peft wrote the base's absolute path; a moved workspace must not use it
        relocatable_adapter(ws.runs_dir / run.run_id / "final", ws.root)
    rows = [run_row(ws, cfg, student, run) for run in planned]
    ws.write_table("runs", pd.DataFrame(rows))
    return StageOutput(["runs"], [ws.resolve(str(r["checkpoint"])) for r in rows], f"({len(rows)} runs)")


def estimate(ws: Workspace, cfg: StudyConfig) -> Estimate:
    from prefdelta.select.stage import planned_strategies

    tc = cfg.train
    have = list(dict.fromkeys(ws.read_table("selections")["strategy"])) if ws.has_table("selections") else []
    strategies = have or planned_strategies(cfg)
    trained = {s for s in strategies for name in tc.selections if select_mod.matches(s, name)}
    runs = len(tc.seeds) * sum(
        sum(1 for s in trained if h.dynamic is None or select_mod.matches(s, h.dynamic.pool))
        for h in tc.hyper_sets().values()
    )
    return Estimate({"training runs": runs}, f"{tc.launcher.kind}; student {cfg.student.model}")


def preflight(ws: Workspace, cfg: StudyConfig) -> None:
    """A student given as a folder or hub id loads (its config; zoo students come later)."""
    if cfg.student.model is not None and not cfg.is_zoo(cfg.student.model):
        _, path, _ = resolve_student(ws, cfg)
        from transformers import AutoConfig

        try:
            AutoConfig.from_pretrained(path)
        except (OSError, ValueError) as err:
            first = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise UserError(f"student.model: cannot load {cfg.student.model!r} ({first})") from None
    if cfg.train.launcher.kind == "accelerate":
        accelerate_config(cfg.train.launcher)
    check_launcher(cfg)
    from prefdelta.train.tracking import check_trackers

    for hyper in cfg.train.hyper_sets().values():
        check_trackers(hyper.report_to)


def _settings(cfg: StudyConfig) -> dict[str, object]:
    return {"student": cfg.student.model_dump(mode="json"), "train": cfg.train.model_dump(mode="json")}


STAGE = Stage(
    name="train",
    inputs=("selections", "pairs", "traces", "problems"),
    optional_inputs=("zoo",),
    outputs=("runs",),
    sections=("student", "train"),
    body=body,
    help="Train the student (DPO, IPO, hinge, KTO, SimPO or ORPO) on each selection, for every variant and seed.",
    workers=lambda cfg: cfg.train.workers,
    estimate=estimate,
    settings=_settings,
    preflight=preflight,
)
