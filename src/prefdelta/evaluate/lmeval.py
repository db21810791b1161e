"""Bridge to lm-evaluation-harness (EleutherAI): run its ``hf`` or ``vllm`` model, or its
``local-completions`` / ``local-chat-completions`` model against a served endpoint, on tasks.

The project ships task YAMLs (``prefdelta/data/lmeval_tasks``) that read GSM8K, MATH-500,
MMLU-STEM and HumanEval from the local data directory (``dataset_path: json`` with
``data_files``), so lm-eval runs offline; their ``process_results`` hooks call
prefdelta's graders, and HumanEval runs in prefdelta's sandbox instead of lm-eval's
hub-loaded ``code_eval``. The data directory is filled into the YAMLs at run time
(``@DATA_DIR@``), in a folder given to lm-eval's ``TaskManager(include_path=...)``.

Short names map to the shipped tasks (``gsm8k`` → ``prefdelta_gsm8k``); lm-eval's own
tasks are available with ``builtin_tasks=True`` (most of them load data from a hub).
Results land in the ``evals`` table (suite ``lm-eval``; CI = value ± 1.96 × lm-eval's
bootstrap standard error, clipped to [0, 1]) and every sample in ``eval_samples``; with an
``output_dir``, lm-eval's own results JSON and per-task samples JSONL (what its
``--output_path`` and ``--log_samples`` write, through its ``EvaluationTracker``) land there
too, so the run can be read with lm-eval's tooling.

A served model (backend ``openai``: vLLM, SGLang, ``transformers serve``) is reached with
lm-eval's API models: its ``/v1`` URL becomes ``base_url`` (``…/v1/completions`` or
``…/v1/chat/completions``) and its name ``model``. Prompts go as text, one per request
(``transformers serve`` takes neither token ids nor lists of prompts). The tokenizer, when
there is one, is a local folder (:class:`~prefdelta.evaluate.config.LmEvalServed`), never a
hub id: lm-eval would otherwise call ``AutoTokenizer.from_pretrained(model)``.
"""

from __future__ import annotations

import copy
import importlib.util
import math
import os
import re
import tempfile
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from prefdelta.errors import MissingDependency, UserError
from prefdelta.evaluate.models import ModelSpec
from prefdelta.hashing import stable_hash
from prefdelta.sources.base import require_data_dir
from prefdelta.workspace import Workspace

if TYPE_CHECKING:
    from prefdelta.evaluate.config import LmEvalServed

SUITE = "lm-eval"
SHARD_PREFIX = "lmeval-"
SHIPPED = {"gsm8k": "in", "math500": "in", "mmlu_stem": "out", "humaneval": "out"}
PREFIX = "prefdelta_"
OUTPUT_DIR = "lm-eval"  # <workspace>/lm-eval/<model_id>/: lm-eval's own result files
API_MODELS = {"completions": "local-completions", "chat-completions": "local-chat-completions"}


def task_name(name: str) -> str:
    """lm-eval's name of a task: shipped short names get the ``prefdelta_`` prefix."""
    return PREFIX + name if name in SHIPPED else name


def render_tasks(data_dir: str | Path, out_dir: Path) -> Path:
    """Write the shipped task YAMLs with the data directory filled in, plus their hooks."""
    root = require_data_dir(data_dir, "lm-eval's local-file tasks").resolve()
    src = resources.files("prefdelta").joinpath("data/lmeval_tasks")
    out_dir.mkdir(parents=True, exist_ok=True)
    for entry in src.iterdir():
        if entry.name.endswith(".yaml"):
            (out_dir / entry.name).write_text(entry.read_text().replace("@DATA_DIR@", str(root)))
        elif entry.name.endswith(".py"):
            (out_dir / entry.name).write_text(entry.read_text())
    return out_dir


def model_args(spec: ModelSpec, device: str = "cpu", dtype: str = "auto") -> dict[str, Any]:
    """lm-eval ``model_args`` for ``spec`` (a LoRA adapter goes in ``peft`` on its base)."""
    if spec.backend not in ("hf", "vllm"):
        raise UserError(f"lm-eval runs the hf or vllm model; got backend {spec.backend!r}")
    args: dict[str, Any] = {"pretrained": spec.base_model or spec.model, "dtype": dtype}
    if spec.is_adapter:
        args["peft" if spec.backend == "hf" else "lora_local_path"] = spec.model
    if spec.backend == "hf":
        args["device"] = device
    return args


def served_tokenizer(spec: ModelSpec, served: LmEvalServed) -> str | None:
    """The local tokenizer folder lm-eval uses for a served model, or None (no tokenizer)."""
    if served.tokenizer is not None:
        if not Path(served.tokenizer, "tokenizer_config.json").is_file():
            raise UserError(
                f"eval.lm_eval_served.tokenizer: {served.tokenizer} is not a local tokenizer folder "
                "(no tokenizer_config.json); lm-eval's tokenizer is never loaded from a hub here"
            )
        return served.tokenizer
    return spec.model if Path(spec.model, "tokenizer_config.json").is_file() else None


def api_model_args(spec: ModelSpec, served: LmEvalServed) -> tuple[str, dict[str, Any]]:
    """lm-eval model name and ``model_args`` for a served model (backend ``openai``)."""
    if not spec.url:
        raise UserError(f"model {spec.id!r}: backend 'openai' needs its server's /v1 URL (url or server)")
    endpoint = "/chat/completions" if served.api == "chat-completions" else "/completions"
    tokenizer = served_tokenizer(spec, served)
    args: dict[str, Any] = {
        "model": spec.model,
        "base_url": spec.url.rstrip("/") + endpoint,
        "tokenizer_backend": "huggingface" if tokenizer else "none",
        "tokenized_requests": False,
        "num_concurrent": served.num_concurrent,
        "max_retries": served.max_retries,
        "timeout": served.timeout_s,
    }
    if tokenizer:
        args["tokenizer"] = tokenizer
    return API_MODELS[served.api], args


def output_dir(ws: Workspace, model_id: str) -> Path:
    """Where lm-eval's own result files of ``model_id`` go in a workspace."""
    return ws.root / OUTPUT_DIR / _safe(model_id)


def save_outputs(
    results: dict[str, Any], tracker: Any, out_dir: Path, log_samples: bool = True
) -> list[Path]:
    """Write lm-eval's results JSON (and samples JSONL) with its ``EvaluationTracker``.

    The tracker writes into a scratch folder under ``out_dir``'s parent and the files are
    renamed into ``out_dir`` only when all of them are written, so a failed run leaves
    nothing half-written there. The tracker edits what it saves, so it gets copies.
    """
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    samples = copy.deepcopy(results.get("samples") or {})
    aggregated = copy.deepcopy({k: v for k, v in results.items() if k != "samples"})
    with tempfile.TemporaryDirectory(dir=out_dir.parent, prefix=".tmp-") as tmp:
        tracker.output_path = tmp
        tracker.save_results_aggregated(results=aggregated, samples=samples if log_samples else None)
        if log_samples:
            for task in aggregated.get("configs", {}):
                if task in samples:
                    tracker.save_results_samples(task_name=task, samples=samples[task])
        written = sorted(p for p in Path(tmp).rglob("*") if p.is_file())
        if not any(p.name.startswith("results_") for p in written):
            raise RuntimeError(f"lm-eval's EvaluationTracker wrote no results file for {out_dir}")
        out_dir.mkdir(parents=True, exist_ok=True)
        moved = []
        for p in written:
            os.replace(p, out_dir / p.name)
            moved.append(out_dir / p.name)
    return moved


def run(
    spec: ModelSpec,
    tasks: list[str],
    data_dir: str | Path,
    limit: int | None = None,
    batch_size: int = 8,
    device: str = "cpu",
    gen_kwargs: dict[str, Any] | None = None,
    confirm_run_unsafe_code: bool = True,
    builtin_tasks: bool = False,
    served: LmEvalServed | None = None,
    out_dir: Path | None = None,
    log_samples_file: bool = True,
) -> dict[str, Any]:
    """``lm_eval.simple_evaluate`` on ``tasks``; the raw results dict.

    ``builtin_tasks`` also indexes lm-eval's own tasks (slow to index, and most load
    their data from a hub); off, only the shipped local-file tasks are known. ``served``
    configures lm-eval's API model for a backend ``openai`` spec; ``out_dir`` receives
    lm-eval's own results JSON (and, with ``log_samples_file``, its samples JSONL).
    """
    try:
        import lm_eval
        from lm_eval.loggers import EvaluationTracker
        from lm_eval.tasks import TaskManager
    except ImportError:
        raise MissingDependency("lm-eval", "lmeval", "the lm-eval bridge") from None
    chat = False
    if spec.backend == "openai":
        from prefdelta.evaluate.config import LmEvalServed

        if importlib.util.find_spec("tenacity") is None:  # lm-eval's API models retry with it
            raise MissingDependency("tenacity", "lmeval", "lm-eval on a served model")
        served = served or LmEvalServed()
        model, args = api_model_args(spec, served)
        chat = served.api == "chat-completions"
        batch_size = 1  # one prompt per request; lm-eval's num_concurrent gives the parallelism
    else:
        model, args = spec.backend, model_args(spec, device)
    names = [task_name(t) for t in tasks]
    tracker = EvaluationTracker() if out_dir is not None else None
    with tempfile.TemporaryDirectory(prefix="prefdelta-lmeval-") as tmp:
        include = render_tasks(data_dir, Path(tmp) / "tasks")
        manager = TaskManager(include_path=str(include), include_defaults=builtin_tasks)
        unknown = [n for n in names if n not in manager.all_tasks]
        if unknown:
            hint = (
                ""
                if builtin_tasks
                else " (lm-eval's own tasks: lmeval.run(..., builtin_tasks=True); most need a hub)"
            )
            raise UserError(f"unknown lm-eval task {unknown[0]!r}; shipped: {', '.join(SHIPPED)}{hint}")
        results = lm_eval.simple_evaluate(
            model=model,
            model_args=args,
            tasks=names,
            batch_size=batch_size,
            limit=limit,
            task_manager=manager,
            gen_kwargs=gen_kwargs,
            log_samples=True,
            evaluation_tracker=tracker,
            apply_chat_template=chat,
            confirm_run_unsafe_code=confirm_run_unsafe_code,
            bootstrap_iters=1000,
        )
    if results is None:  # non-zero ranks under accelerate return nothing
        raise UserError("lm-eval returned no results (not the main process?)")
    if out_dir is not None:
        save_outputs(results, tracker, out_dir, log_samples_file)
    return results


def result_rows(
    results: dict[str, Any],
    model_id: str,
    checkpoint_hash: str,
    suite: str = SUITE,
    domain: str | None = None,
) -> pd.DataFrame:
    """``evals`` rows of an lm-eval results dict: one per task and metric."""
    rows = []
    for task, metrics in results["results"].items():
        short = task.removeprefix(PREFIX)
        n = int(results.get("n-samples", {}).get(task, {}).get("effective", 0))
        for key, value in metrics.items():
            if "," not in key or "_stderr" in key or not isinstance(value, int | float):
                continue
            metric, filt = key.split(",", 1)
            stderr = metrics.get(f"{metric}_stderr,{filt}")
            half = (
                1.96 * float(stderr)
                if isinstance(stderr, int | float) and math.isfinite(stderr)
                else math.nan
            )
            rows.append(
                {
                    "model_id": model_id,
                    "checkpoint_hash": checkpoint_hash,
                    "suite": suite,
                    "domain": domain or SHIPPED.get(short, "out"),
                    "benchmark": short,
                    "level": "benchmark",
                    "metric": metric if filt == "none" else f"{metric}[{filt}]",
                    "value": float(value),
                    "n": n,
                    "samples_per_problem": 1,
                    "ci_low": max(0.0, float(value) - half) if math.isfinite(half) else math.nan,
                    "ci_high": min(1.0, float(value) + half) if math.isfinite(half) else math.nan,
                }
            )
    return pd.DataFrame(rows)


def sample_rows(
    results: dict[str, Any], model_id: str, checkpoint_hash: str, suite: str = SUITE
) -> pd.DataFrame:
    """``eval_samples`` rows: every generated text with its grade, for inspection and compare."""
    rows = []
    for task, samples in results.get("samples", {}).items():
        short = task.removeprefix(PREFIX)
        for s in samples:
            resps = s.get("filtered_resps") or s.get("resps") or [""]
            texts = [r if isinstance(r, str) else (r[0] if r else "") for r in resps]
            score = next((s[m] for m in ("acc", "pass@1", "exact_match") if m in s), None)
            for j, text in enumerate(texts):
                rows.append(
                    {
                        "model_id": model_id,
                        "checkpoint_hash": checkpoint_hash,
                        "suite": suite,
                        "benchmark": short,
                        "problem_id": f"{short}-{s['doc_id']:05d}",
                        "sample": j,
                        "text": text,
                        "correct": bool(score) if score is not None else None,
                    }
                )
    return pd.DataFrame(rows)


def task_results(results: dict[str, Any], task: str) -> dict[str, Any]:
    """The part of an lm-eval results dict that concerns one (short-named) task."""
    name = task_name(task)
    return {
        **results,
        "results": {k: v for k, v in results["results"].items() if k == name},
        "samples": {k: v for k, v in results.get("samples", {}).items() if k == name},
        "n-samples": {k: v for k, v in results.get("n-samples", {}).items() if k == name},
    }


def _safe(model_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=+-]", "_", model_id)


def shard_name(model_id: str, key: str) -> str:
    return f"{SHARD_PREFIX}{_safe(model_id)}-{key}"


def _suite_of(ws: Workspace, table: str, shard: str) -> str | None:
    df = pd.read_parquet(ws.shard_path(table, shard), columns=["suite"])
    return str(df["suite"].iloc[0]) if len(df) else None


def write(
    ws: Workspace,
    results: dict[str, Any],
    model_id: str,
    checkpoint_hash: str,
    suite: str = SUITE,
    domain: str | None = None,
    key: str | None = None,
    replace: bool = False,
) -> pd.DataFrame:
    """Store an lm-eval run in ``evals`` and ``eval_samples``; return the evals rows.

    In a study (``suite`` the entry's name) a suite-level row repeats the task's first
    metric, so the report shows the task beside the other suites.
    """
    rows = result_rows(results, model_id, checkpoint_hash, suite, domain)
    if suite != SUITE and len(rows):
        first = rows.iloc[0].to_dict()
        rows = pd.concat(
            [rows, pd.DataFrame([{**first, "benchmark": suite, "level": "suite"}])], ignore_index=True
        )
    samples = sample_rows(results, model_id, checkpoint_hash, suite)
    key = key or stable_hash(
        model_id, checkpoint_hash, sorted(results["results"]), results.get("config", {}).get("limit")
    )
    shard = shard_name(model_id, key)
    if replace:  # an earlier checkpoint or spec of this model's task
        for table in ("evals", "eval_samples"):
            for old in ws.shards(table):
                if (
                    old != shard
                    and old.startswith(f"{SHARD_PREFIX}{_safe(model_id)}-")
                    and _suite_of(ws, table, old) == suite
                ):
                    ws.shard_path(table, old).unlink(missing_ok=True)
    if len(samples):
        ws.write_shard("eval_samples", shard, samples)
    ws.write_shard("evals", shard, rows)
    return rows
