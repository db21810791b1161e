"""Run a suite on a model: prompts → backend → graded samples → metrics with 95% CIs.

Tables (workspace): ``eval_samples`` keeps every sample (prompt id, sample index, text,
finish reason, extracted answer, grade) for inspection and for paired comparisons;
``evals`` gets one row per benchmark and metric and one per suite (``level`` says
which), with ``model_id``, ``checkpoint_hash``, ``value``, ``n`` and a bootstrap 95%
interval over problems.

Resume: each benchmark's samples are one shard, written once it is graded; a rerun
with the same model, checkpoint, benchmark spec and limit reuses it, so an interrupted
suite redoes only the unfinished benchmark.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from prefdelta.evaluate.grading import grade_texts
from prefdelta.evaluate.passk import pass_at_k
from prefdelta.evaluate.sandbox import Limits
from prefdelta.evaluate.stats import bootstrap_ci, stratified_bootstrap_ci
from prefdelta.evaluate.suites import BenchmarkSpec, SuiteSpec
from prefdelta.generate.base import Backend, Request, Result
from prefdelta.hashing import stable_hash
from prefdelta.sources.registry import load_source
from prefdelta.workspace import Workspace

SHARD_PREFIX = "suite-"


def build_requests(bench: BenchmarkSpec, problems: pd.DataFrame, chat: bool = False) -> list[Request]:
    """One request per problem, ``samples`` completions each, the template filled in; with
    ``chat`` the filled template is the user message (the model's chat template applies).

    ``str.replace`` rather than ``format``: templates and problems are full of LaTeX braces.
    """
    sampling = bench.sampling.to_sampling(bench.samples)  # type: ignore[union-attr]
    out = []
    for pid, prompt in zip(problems["problem_id"], problems["prompt"], strict=True):
        text = bench.template.replace("{prompt}", prompt)  # type: ignore[union-attr]
        if chat:
            out.append(Request(pid, messages=({"role": "user", "content": text},), sampling=sampling))
        else:
            out.append(Request(pid, prompt=text, sampling=sampling))
    return out


def grade_results(
    bench: BenchmarkSpec,
    problems: pd.DataFrame,
    results: list[Result],
    sandbox: Limits | None = None,
    workers: int = 2,
) -> pd.DataFrame:
    """One row per sample: ``problem_id``, ``sample``, ``text``, ``finish_reason``, ``predicted``, ``correct``."""
    by_id = problems.drop_duplicates("problem_id").set_index("problem_id", drop=False)
    results = sorted(results, key=lambda r: (r.request_id, r.index))
    texts = [r.text for r in results]
    records = by_id.to_dict("index")
    rows = [records[r.request_id] for r in results]
    grades = grade_texts([str(bench.grader)] * len(results), rows, texts, workers=workers, sandbox=sandbox)
    return pd.DataFrame(
        {
            "problem_id": [r.request_id for r in results],
            "sample": [r.index for r in results],
            "text": texts,
            "finish_reason": [r.finish_reason for r in results],
            "error": pd.Series([r.error for r in results], dtype="string"),
            "predicted": pd.Series([g.predicted for g in grades], dtype="string"),
            "correct": [g.correct and r.error is None for g, r in zip(grades, results, strict=True)],
        }
    )


def problem_scores(samples: pd.DataFrame, metric: str) -> pd.Series:
    """Per-problem score of a metric from graded samples (indexed by ``problem_id``).

    ``accuracy`` / ``avg@k``: share of correct samples (avg@k — the mean accuracy over k
    samples — is the low-variance score of tiny benchmarks such as AIME, used e.g. by
    DeepSeek-R1, 2025); ``pass@k``: the unbiased estimator (Chen et al. 2021).
    """
    grouped = samples.groupby("problem_id", sort=True)["correct"]
    if metric.startswith("pass@"):
        k = int(metric.removeprefix("pass@"))
        return grouped.agg(lambda c: pass_at_k(len(c), int(c.sum()), k))
    return grouped.mean().astype(float)


def metric_names(bench: BenchmarkSpec) -> list[str]:
    """The metric columns a benchmark reports (``pass@k`` expands to one per k)."""
    if bench.metric == "pass@k":
        return [f"pass@{k}" for k in bench.k]
    if bench.metric == "avg@k":
        return [f"avg@{bench.samples}"]
    return ["accuracy"]


def benchmark_rows(suite: SuiteSpec, bench: BenchmarkSpec, samples: pd.DataFrame, ident: dict) -> list[dict]:
    """``evals`` rows of one benchmark: value, n problems, bootstrap 95% CI over problems."""
    rows = []
    for metric in metric_names(bench):
        scores = problem_scores(samples, metric)
        lo, hi = bootstrap_ci(scores.to_numpy())
        rows.append(
            {
                **ident,
                "suite": suite.name,
                "domain": suite.domain,
                "benchmark": bench.name,
                "level": "benchmark",
                "metric": metric,
                "value": float(scores.mean()) if len(scores) else float("nan"),
                "n": len(scores),
                "samples_per_problem": bench.samples,
                "ci_low": lo,
                "ci_high": hi,
            }
        )
    return rows


def suite_row(suite: SuiteSpec, per_bench: dict[str, pd.Series], ident: dict) -> dict:
    """The suite's row: macro mean of its benchmarks' primary metric, stratified bootstrap CI."""
    groups = [s.to_numpy() for s in per_bench.values()]
    lo, hi = stratified_bootstrap_ci(groups)
    return {
        **ident,
        "suite": suite.name,
        "domain": suite.domain,
        "benchmark": suite.name,
        "level": "suite",
        "metric": "macro_mean",
        "value": float(sum(g.mean() for g in groups) / len(groups)) if groups else float("nan"),
        "n": int(sum(len(g) for g in groups)),
        "samples_per_problem": 0,
        "ci_low": lo,
        "ci_high": hi,
    }


def evaluate_suite(
    ws: Workspace,
    suite: SuiteSpec,
    backend: Callable[[], Backend],
    model_id: str,
    checkpoint_hash: str,
    data_dir: str | Path | None = None,
    limit: int | None = None,
    sandbox: Limits | None = None,
    workers: int = 2,
    log: Callable[[str], None] = lambda _m: None,
    chat: bool | Callable[[Backend], bool] = False,
    code: str = "",
    adjust: Callable[[BenchmarkSpec], BenchmarkSpec] | None = None,
    twin: tuple[str, str] | None = None,
) -> pd.DataFrame:
    """Evaluate one model on ``suite``; write ``eval_samples`` and ``evals`` shards; return the rows.

    ``backend`` is a factory, called only if some benchmark has no finished shard (so a
    resumed run does not load the model again). ``chat``: send chat messages (or a
    function of the backend deciding it). ``code``: the caller's code version, part of
    every shard key. ``adjust``: overrides applied to each benchmark (sampling budgets).
    ``twin``: ``(model_id, checkpoint_hash)`` of a model with the same weights evaluated
    before (a training run that repeats another, ``train.stage.split_twins``): its graded
    samples are taken over rather than generated again.
    """
    ident = {"model_id": model_id, "checkpoint_hash": checkpoint_hash}
    rows: list[dict] = []
    per_bench: dict[str, pd.Series] = {}
    keys = []
    live: Backend | None = None
    tag = _safe(model_id)
    for bench in suite.benchmarks:
        if adjust is not None:
            bench = adjust(bench)
        n = min(x for x in (limit, bench.limit, 10**9) if x is not None)
        bench_prefix = f"{SHARD_PREFIX}{tag}-{suite.name}-{bench.name}-"
        shard = _samples_shard(model_id, checkpoint_hash, suite, bench, n, code)
        keys.append(shard[len(bench_prefix) :])
        twin_shard = None if twin is None else _samples_shard(*twin, suite, bench, n, code)
        if shard in ws.shards("eval_samples"):
            samples = pd.read_parquet(ws.shard_path("eval_samples", shard))
            log(f"{bench.name}: reusing {len(samples)} graded samples")
        elif twin_shard is not None and twin_shard in ws.shards("eval_samples"):
            samples = pd.read_parquet(ws.shard_path("eval_samples", twin_shard))
            samples["model_id"], samples["checkpoint_hash"] = model_id, checkpoint_hash
            ws.write_shard("eval_samples", shard, samples)
            log(f"{bench.name}: {len(samples)} graded samples of {twin[0]} (the same weights)")
        else:
            problems = load_source(bench.source, bench.split, data_dir, **bench.options).head(n)
            if live is None:
                live = backend()
            use_chat = chat(live) if callable(chat) else chat
            log(f"{bench.name}: {len(problems)} problems × {bench.samples} samples")
            results = live.generate(build_requests(bench, problems, use_chat))
            samples = grade_results(bench, problems, results, sandbox, workers)
            samples.insert(0, "benchmark", bench.name)
            samples.insert(0, "suite", suite.name)
            for col, val in reversed(ident.items()):
                samples.insert(0, col, val)
            ws.write_shard("eval_samples", shard, samples)
            for old in ws.shards("eval_samples"):  # an earlier checkpoint or spec of this benchmark
                if old.startswith(bench_prefix) and old != shard and old[len(bench_prefix) :].isalnum():
                    ws.shard_path("eval_samples", old).unlink(missing_ok=True)
        bench_rows = benchmark_rows(suite, bench, samples, ident)
        rows += bench_rows
        per_bench[bench.name] = problem_scores(samples, bench_rows[0]["metric"])
    rows.append(suite_row(suite, per_bench, ident))
    frame = pd.DataFrame(rows)
    prefix = f"{SHARD_PREFIX}{tag}-{suite.name}-"
    shard = f"{prefix}{stable_hash(*keys)}"
    ws.write_shard("evals", shard, frame)
    for old in ws.shards("evals"):  # an earlier spec of the same model and suite
        if old.startswith(prefix) and old != shard:
            ws.shard_path("evals", old).unlink(missing_ok=True)
    return frame


def _samples_shard(
    model_id: str, checkpoint_hash: str, suite: SuiteSpec, bench: BenchmarkSpec, n: int, code: str
) -> str:
    """The ``eval_samples`` shard of one model on one benchmark (its weights, spec, limit, code)."""
    key = stable_hash(model_id, checkpoint_hash, suite.name, bench.model_dump(mode="json"), n, code)
    return f"{SHARD_PREFIX}{_safe(model_id)}-{suite.name}-{bench.name}-{key}"


def _safe(name: str) -> str:
    """A model id as a shard-name fragment (hub ids contain ``/``)."""
    return re.sub(r"[^A-Za-z0-9_.=+-]", "_", name)
