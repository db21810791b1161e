"""Problems × samples × one generator -> ``traces`` rows with provenance, resumable.

Why item-level resume: a run over thousands of problems on a served model takes hours
and gets killed (pre-emption, a lost node, Ctrl-C). Results are flushed every
``flush_every`` items as one atomic shard of ``traces`` (successes) and of
``generation_errors`` (failures, with their reason). A re-run reads the shards of the
same run key, asks the backend only for the (problem, sample) items that have no trace
yet — errors included, so they are retried — and writes new shards. Each item is
therefore in ``traces`` exactly once, whenever the run was killed.

Backends that seed every request (``openai``, ``vllm``: ``seeded_per_request``) get all
missing items in one call, so requests stay in flight across flushes. The ``hf``
backend seeds per batch, so its texts depend on which prompts share a batch: it gets the
problems in fixed slices of ``flush_every // samples``, each written when done, so a
resumed run regenerates a killed slice with the same batches and the same texts.

Shards are named ``<generator_id>--<run key>-<seq>``. The run key hashes the generator
(model, backend, options), the sampling, the prompt templates and the problem ids, so a
changed config starts afresh and its stale shards are removed.

``traces`` columns: trace_id, problem_id, generator_id, sample, seed, text,
finish_reason, prompt_tokens, n_tokens (completion tokens), model, backend, template,
prompt_style, sampling (JSON: temperature, top_p, max_tokens, stop, samples), attempts,
created_at, prompt_text, prompt_messages. ``trace_id`` = ``stable_hash(generator_id,
problem_id, sample, seed)``.

``prompt_text`` (string) is what the model was fed: the plain prompt as sent, or the chat
template's rendering of the messages where the backend applied it (``hf``, ``vllm``); it
is null where a server applied its template unseen (``openai`` chat). ``prompt_messages``
(string, a JSON list of ``{"role", "content"}``) holds the chat messages as sent, null for
plain prompts. Exports train on these, so the training prompt is the sampling prompt.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from prefdelta.generate.base import Backend, Request, Result, Sampling
from prefdelta.generate.config import SamplingSpec
from prefdelta.generate.prompts import PromptTemplate, load_template, template_for_source
from prefdelta.hashing import stable_hash
from prefdelta.workspace import Workspace

TRACES = "traces"
ERRORS = "generation_errors"
TRACE_COLUMNS = [
    "trace_id",
    "problem_id",
    "generator_id",
    "sample",
    "seed",
    "text",
    "finish_reason",
    "prompt_tokens",
    "n_tokens",
    "model",
    "backend",
    "template",
    "prompt_style",
    "sampling",
    "attempts",
    "created_at",
    "prompt_text",
    "prompt_messages",
]
ERROR_COLUMNS = [
    "trace_id",
    "problem_id",
    "generator_id",
    "sample",
    "seed",
    "error",
    "attempts",
    "created_at",
]


def trace_id(generator_id: str, problem_id: str, sample: int, seed: int) -> str:
    """The stable id of one (generator, problem, sample, seed) trace."""
    return stable_hash(generator_id, problem_id, sample, seed)


@dataclass
class GeneratorRun:
    """What one generator is asked to do, and how its rows are labelled.

    ``template``: a template name/path for every problem, or ``None`` for each problem
    source's default. ``chat``: send chat messages (else plain prompts).
    """

    generator_id: str
    backend: Backend
    model: str
    sampling: SamplingSpec
    chat: bool = False
    template: str | None = None
    provenance: dict[str, Any] = field(default_factory=dict)

    def template_of(self, source: str) -> PromptTemplate:
        return load_template(self.template) if self.template else template_for_source(source)


def run_key(run: GeneratorRun, problem_ids: list[str], templates: dict[str, PromptTemplate]) -> str:
    """Hash of everything that decides the texts of a run (never a secret: no keys in provenance)."""
    return stable_hash(
        run.generator_id,
        run.model,
        getattr(run.backend, "name", "?"),
        run.provenance,
        run.sampling.model_dump(),
        run.chat,
        {k: vars(t) for k, t in sorted(templates.items())},
        problem_ids,
    )


def shard_generator(shard: str) -> str:
    return shard.rsplit("--", 1)[0]


def _next_seq(shards: list[str], prefix: str) -> int:
    seqs = [
        int(s.rsplit("-", 1)[1]) for s in shards if s.startswith(prefix) and s.rsplit("-", 1)[1].isdigit()
    ]
    return max(seqs, default=-1) + 1


def _read_shards(ws: Workspace, table: str, shards: list[str]) -> pd.DataFrame:
    frames = [pd.read_parquet(ws.shard_path(table, s)) for s in shards]
    frames = [f for f in frames if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def plan_requests(
    run: GeneratorRun, problems: pd.DataFrame, done: set[str], templates: dict[str, PromptTemplate]
) -> tuple[list[Request], dict[str, tuple[str, int]]]:
    """Requests for the items without a trace; request id -> (problem_id, first sample).

    A problem with no sample done is one request with ``n = samples`` (servers share the
    prompt's prefill); one partly done gets one request per missing sample.
    """
    s = run.sampling
    requests: list[Request] = []
    index: dict[str, tuple[str, int]] = {}
    for row in problems.itertuples(index=False):
        template = templates[row.source]
        missing = [
            k for k in range(s.samples) if trace_id(run.generator_id, row.problem_id, k, s.seed) not in done
        ]
        if not missing:
            continue
        stop = tuple(dict.fromkeys([*template.stop, *s.stop]))
        content: dict[str, Any] = (
            {"messages": template.messages(row.prompt)} if run.chat else {"prompt": template.text(row.prompt)}
        )
        groups = [(0, s.samples)] if len(missing) == s.samples else [(k, 1) for k in missing]
        for first, n in groups:
            rid = f"{row.problem_id}@{first}"
            sampling = Sampling(
                temperature=s.temperature,
                top_p=s.top_p,
                max_tokens=s.max_tokens,
                stop=stop,
                seed=s.seed + first,
                n=n,
            )
            requests.append(Request(rid, sampling=sampling, **content))
            index[rid] = (row.problem_id, first)
    return requests, index


def prompt_columns(request: Request, result: Result) -> dict[str, str | None]:
    """``prompt_text`` and ``prompt_messages`` of a trace: exactly what its request sent.

    The backend's rendering wins (a chat template applied in-process); a plain prompt is
    its own rendering; chat messages a server rendered leave ``prompt_text`` null.
    """
    text = result.prompt_text if result.prompt_text is not None else request.prompt
    messages = None if request.messages is None else json.dumps([dict(m) for m in request.messages])
    return {"prompt_text": text, "prompt_messages": messages}


def generate_traces(
    ws: Workspace,
    run: GeneratorRun,
    problems: pd.DataFrame,
    *,
    flush_every: int = 256,
    progress: Callable[[int], None] | None = None,
) -> pd.DataFrame:
    """Sample ``run`` on ``problems`` (a ``problems`` table), resuming; returns its traces.

    Returns the generator's rows of ``traces`` for this run (old and new). Items that
    failed after the backend's retries are in ``generation_errors``, not in the result.
    """
    problems = problems.drop_duplicates("problem_id")
    templates = {src: run.template_of(src) for src in sorted(set(problems["source"]))}
    key = run_key(run, list(problems["problem_id"]), templates)
    prefix = f"{run.generator_id}--{key}-"
    shards = ws.shards(TRACES)
    mine = [s for s in shards if s.startswith(prefix)]
    # a changed config: this generator's shards of other run keys go (only its own: another
    # generator may be writing its shards beside them, in another process)
    ws.remove_shards(TRACES, [s for s in shards if s not in mine and shard_generator(s) == run.generator_id])
    ws.remove_shards(
        ERRORS,
        [s for s in ws.shards(ERRORS) if not s.startswith(prefix) and shard_generator(s) == run.generator_id],
    )
    existing = _read_shards(ws, TRACES, mine)
    done = set(existing["trace_id"]) if len(existing) else set()
    index: dict[str, tuple[str, int]] = {}
    sent: dict[str, Request] = {}
    s = run.sampling
    sampling_json = json.dumps(
        {
            "temperature": s.temperature,
            "top_p": s.top_p,
            "max_tokens": s.max_tokens,
            "stop": s.stop,
            "samples": s.samples,
        },
        sort_keys=True,
    )
    style = "chat" if run.chat else "completion"
    template_name = {
        p: templates[src].name for p, src in zip(problems["problem_id"], problems["source"], strict=True)
    }
    seq = _next_seq(ws.shards(TRACES) + ws.shards(ERRORS), prefix)
    ok_rows: list[dict[str, Any]] = []
    err_rows: list[dict[str, Any]] = []
    written: list[pd.DataFrame] = [existing] if len(existing) else []

    def flush() -> None:
        nonlocal seq, ok_rows, err_rows
        if not ok_rows and not err_rows:
            return
        name = f"{prefix}{seq:05d}"
        if err_rows:
            ws.write_shard(ERRORS, name, pd.DataFrame(err_rows, columns=ERROR_COLUMNS))
        frame = pd.DataFrame(ok_rows, columns=TRACE_COLUMNS)
        ws.write_shard(TRACES, name, frame)  # written last: it is what marks items done
        written.append(frame)
        seq += 1
        ok_rows, err_rows = [], []

    def on_result(r: Result) -> None:
        pid, first = index[r.request_id]
        sample = first + r.index
        tid = trace_id(run.generator_id, pid, sample, s.seed)
        if tid in done:  # a backend answering twice must not make a duplicate trace
            return
        now = time.time()
        if r.error is not None:
            err_rows.append(
                {
                    "trace_id": tid,
                    "problem_id": pid,
                    "generator_id": run.generator_id,
                    "sample": sample,
                    "seed": s.seed,
                    "error": r.error,
                    "attempts": r.attempts,
                    "created_at": now,
                }
            )
        else:
            done.add(tid)
            ok_rows.append(
                {
                    "trace_id": tid,
                    "problem_id": pid,
                    "generator_id": run.generator_id,
                    "sample": sample,
                    "seed": s.seed,
                    "text": r.text,
                    "finish_reason": r.finish_reason,
                    "prompt_tokens": r.prompt_tokens,
                    "n_tokens": r.completion_tokens,
                    "model": run.model,
                    "backend": getattr(run.backend, "name", "?"),
                    "template": template_name[pid],
                    "prompt_style": style,
                    "sampling": sampling_json,
                    "attempts": r.attempts,
                    "created_at": now,
                    **prompt_columns(sent[r.request_id], r),
                }
            )
        if progress is not None:
            progress(1)
        if len(ok_rows) + len(err_rows) >= flush_every:
            flush()

    if getattr(run.backend, "seeded_per_request", False):
        parts = [problems]
    else:  # fixed slices: a resumed slice gets the same batches, hence the same texts
        per = max(1, flush_every // s.samples)
        parts = [problems.iloc[i : i + per] for i in range(0, len(problems), per)]
    for part in parts:
        requests, part_index = plan_requests(run, part, done, templates)
        if not requests:
            continue
        index.update(part_index)
        sent.update((q.request_id, q) for q in requests)
        try:
            run.backend.generate(requests, on_result=on_result)
        finally:
            flush()
    if not ws.shards(TRACES) or not any(x.startswith(prefix) for x in ws.shards(TRACES)):
        ws.write_shard(TRACES, f"{prefix}{seq:05d}", pd.DataFrame(columns=TRACE_COLUMNS))
    _compact_errors(ws, prefix)
    out = (
        pd.concat([w for w in written if len(w)], ignore_index=True) if any(len(w) for w in written) else None
    )
    return out if out is not None else pd.DataFrame(columns=TRACE_COLUMNS)


def _compact_errors(ws: Workspace, prefix: str) -> None:
    """Keep only the latest error of items that still have no trace, in one shard."""
    shards = [x for x in ws.shards(ERRORS) if x.startswith(prefix)]
    if not shards:
        return
    errors = _read_shards(ws, ERRORS, shards)
    done = set(
        _read_shards(ws, TRACES, [x for x in ws.shards(TRACES) if x.startswith(prefix)]).get("trace_id", [])
    )
    if len(errors):
        errors = (
            errors[~errors["trace_id"].isin(done)]
            .sort_values("created_at")
            .drop_duplicates("trace_id", keep="last")
        )
    name = f"{prefix}errors"
    if len(errors):
        ws.write_shard(ERRORS, name, errors.reset_index(drop=True))
    ws.remove_shards(ERRORS, [x for x in shards if x != name or not len(errors)])
