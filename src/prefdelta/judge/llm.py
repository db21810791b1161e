"""LLM judge over any generation backend: one call scores every dimension of one trace.

As in the reference study, each trace is judged ``repeats`` times (default 5) at
temperature ``temperature`` (default 0.6) and the repeats are averaged, keeping each
dimension's spread (:func:`aggregate_repeats`). The judge is asked for JSON through
``response_format`` (a JSON schema built from the rubric; OpenAI-compatible servers such
as vLLM enforce it) and its reply is read by :func:`prefdelta.judge.parse.parse_scores`,
which falls back to tolerant parsing for backends that ignore the schema.

Unparseable replies are retried (``retries`` more attempts, each with its own seed);
what still fails becomes an error row carrying the raw reply — never a silent score.
Every reply goes through :class:`~prefdelta.judge.cache.ResponseCache`, keyed by the
judge id, rubric hash, prompt, sampling, repeat and attempt, so a re-run of the same
judgments costs zero requests.

A transport fault (the backend gave up: timeouts, HTTP 5xx, a cut body) is not retried
here at a new attempt: the backend has retried it already, and a new attempt would mean
a new seed, so the row's score would depend on when the network failed. It becomes an
error row starting with :data:`TRANSPORT_ERROR` and no cached reply; the next run
re-sends exactly that request (same repeat, attempt and seed) and nothing else. A request
the server refused for its content (HTTP 400/413/422, e.g. a prompt over the context)
becomes an error row starting with :data:`REFUSED_ERROR`, which no re-run re-sends.

Pairwise mode (:meth:`LLMJudge.compare`) shows two traces in one prompt and asks which
is better per dimension, in both orders, which is what position-bias audits need.

Traces are untrusted: they are delimited by markers they cannot contain
(:mod:`prefdelta.judge.rubric`) and only the judge's own reply is parsed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from prefdelta.errors import UserError
from prefdelta.generate.base import Backend, Request, Result, Sampling
from prefdelta.judge.cache import ResponseCache
from prefdelta.judge.parse import ParseError, parse_scores
from prefdelta.judge.rubric import Rubric, render_pairwise_prompt, render_prompt

TRANSPORT_ERROR = "backend error"
"""How the ``error`` of a row no reply stands behind begins (the request failed in transport)."""

REFUSED_ERROR = "request refused"
"""How the ``error`` of a row begins when the server refused the request's content (e.g. a
prompt longer than the model's context, HTTP 400): an error row like an unparseable reply,
counted against ``max_error_rate``, and not a gap a re-run would re-send."""


def is_transport_error(errors: pd.Series) -> pd.Series:
    """Which ``error`` values are transport faults: rows a re-run fills by re-sending the request."""
    return errors.astype("string").fillna("").str.startswith(f"{TRANSPORT_ERROR}:")


@dataclass(frozen=True)
class JudgeItem:
    """One trace to judge, with its problem and (where known) the reference answer."""

    trace_id: str
    problem: str
    trace: str
    reference: str | None = None


@dataclass(frozen=True)
class PairItem:
    """Two traces of one problem for pairwise judging; ``a`` is shown first in order ``ab``."""

    pair_id: str
    problem: str
    a: str
    b: str
    reference: str | None = None


@dataclass(frozen=True)
class LLMJudgeOptions:
    """Knobs of the LLM judge.

    ``repeats`` 1–10 (reference study: 5); ``temperature`` 0–1 (0.6; 0 makes repeats
    identical); ``max_tokens`` 256–2048 (room for the rationale); ``retries`` 0–3 extra
    attempts for unparseable replies; ``structured`` sends the JSON schema as
    ``response_format`` (chat only: the completions API has no such field);
    ``chat`` uses chat messages (else one completion prompt ending in ``JSON:``).
    """

    repeats: int = 5
    temperature: float = 0.6
    top_p: float = 1.0
    max_tokens: int = 512
    retries: int = 2
    structured: bool = True
    chat: bool = True
    seed: int = 0


@dataclass
class _Job:
    request_id: str
    key_id: str  # trace_id or pair_id/order
    repeat: int
    prompt: str
    pairwise: bool


class LLMJudge:
    """Scores traces with a served model; results are judgment rows (one per repeat)."""

    def __init__(
        self,
        backend: Backend,
        rubric: Rubric,
        judge_id: str,
        cache: ResponseCache | None = None,
        options: LLMJudgeOptions | None = None,
    ) -> None:
        self.backend = backend
        self.rubric = rubric
        self.judge_id = judge_id
        self.cache = cache if cache is not None else ResponseCache(None)
        self.options = options or LLMJudgeOptions()
        self.requests_sent = 0
        self._rubric_hash = rubric.hash

    # ---- requests -----------------------------------------------------------------------
    def _sampling(self, repeat: int, attempt: int) -> Sampling:
        o = self.options
        return Sampling(
            temperature=o.temperature,
            top_p=o.top_p,
            max_tokens=o.max_tokens,
            seed=o.seed + 1000 * attempt + repeat,
        )

    def _request(self, job: _Job, attempt: int) -> tuple[Request, str]:
        o = self.options
        sampling = self._sampling(job.repeat, attempt)
        # /v1/completions has no response_format (transformers serve rejects it with HTTP 422)
        fmt = self.rubric.response_format(job.pairwise) if o.structured and o.chat else None
        if o.chat:
            messages = (
                {"role": "system", "content": self.rubric.system},
                {"role": "user", "content": job.prompt},
            )
            req = Request(
                f"{job.request_id}/a{attempt}", messages=messages, sampling=sampling, response_format=fmt
            )
        else:
            prompt = f"{self.rubric.system}\n\n{job.prompt}\n\nJSON:"
            req = Request(
                f"{job.request_id}/a{attempt}", prompt=prompt, sampling=sampling, response_format=fmt
            )
        key = ResponseCache.key(
            self.judge_id, self._rubric_hash, req.prompt, req.messages, sampling, fmt, job.repeat, attempt
        )
        return req, key

    def _call(self, jobs: Sequence[_Job], attempt: int) -> dict[str, Result]:
        """Replies for ``jobs`` from the cache, the rest from the backend in one batch."""
        out: dict[str, Result] = {}
        todo: list[tuple[Request, str, _Job]] = []
        for job in jobs:
            req, key = self._request(job, attempt)
            hit = self.cache.get(key)
            if hit is not None:
                out[job.request_id] = Result(req.request_id, 0, hit[0], hit[1])
            else:
                todo.append((req, key, job))
        if todo:
            self.requests_sent += len(todo)
            keys = {req.request_id: key for req, key, _ in todo}

            def keep(res: Result) -> None:  # cache each reply as it arrives: a killed run loses none
                if res.index == 0 and res.error is None and res.finish_reason != "error":
                    self.cache.put(keys[res.request_id], res.text, res.finish_reason)

            results = self.backend.generate([r for r, _, _ in todo], on_result=keep)
            by_id = {r.request_id: r for r in results if r.index == 0}
            for req, key, job in todo:
                res = by_id.get(req.request_id)
                if res is None:
                    res = Result(req.request_id, 0, "", "error", error="backend returned no result")
                elif res.error is None and res.finish_reason != "error" and key not in self.cache:
                    self.cache.put(key, res.text, res.finish_reason)  # backends that skip on_result
                out[job.request_id] = res
        return out

    def _run(self, jobs: list[_Job]) -> dict[str, tuple[dict[str, int] | None, str, str | None, str, int]]:
        """For each job: (scores or None, raw reply, error, parse method, attempts used)."""
        lo, hi = (1, 2) if jobs and jobs[0].pairwise else (self.rubric.scale.min, self.rubric.scale.max)
        done: dict[str, tuple[dict[str, int] | None, str, str | None, str, int]] = {}
        pending = list(jobs)
        for attempt in range(self.options.retries + 1):
            if not pending:
                break
            replies = self._call(pending, attempt)
            still: list[_Job] = []
            for job in pending:
                res = replies[job.request_id]
                if res.error is not None or res.finish_reason == "error":
                    # not retried at a new attempt (a new seed): the next run re-sends a
                    # transport fault; a refused request would be refused again
                    kind = REFUSED_ERROR if res.refused else TRANSPORT_ERROR
                    done[job.request_id] = (None, res.text, f"{kind}: {res.error}", "", attempt + 1)
                    continue
                try:
                    scores, method = parse_scores(res.text, self.rubric.names, lo, hi)
                except ParseError as err:
                    done[job.request_id] = (None, res.text, str(err), "", attempt + 1)
                    still.append(job)
                else:
                    done[job.request_id] = (scores, res.text, None, method, attempt + 1)
            pending = still
        return done

    # ---- public -------------------------------------------------------------------------
    def score(self, items: Sequence[JudgeItem]) -> pd.DataFrame:
        """Judgment rows: ``trace_id, judge_id, rubric_hash, repeat, <dims>, raw, error, parse_method, attempts``.

        A dimension is NaN on an error row; ``error`` then holds the reason and ``raw``
        the judge's last reply.
        """
        _check_unique([it.trace_id for it in items], "trace_id")
        jobs = [
            _Job(
                f"{it.trace_id}/r{r}",
                it.trace_id,
                r,
                render_prompt(self.rubric, it.problem, it.trace, it.reference),
                False,
            )
            for it in items
            for r in range(self.options.repeats)
        ]
        done = self._run(jobs)
        rows = []
        for job in jobs:
            scores, raw, error, method, attempts = done[job.request_id]
            rows.append(
                {
                    "trace_id": job.key_id,
                    "judge_id": self.judge_id,
                    "rubric_hash": self._rubric_hash,
                    "repeat": job.repeat,
                    **{d: float(scores[d]) if scores else math.nan for d in self.rubric.names},
                    "raw": raw,
                    "error": error,
                    "parse_method": method,
                    "attempts": attempts,
                }
            )
        return _judgment_frame(rows, self.rubric.names)

    def compare(self, pairs: Sequence[PairItem]) -> pd.DataFrame:
        """Pairwise rows in both orders: ``pair_id, order, repeat, prefers_a_<dim>`` (1.0 = ``a`` better)."""
        _check_unique([p.pair_id for p in pairs], "pair_id")
        jobs: list[_Job] = []
        for p in pairs:
            for order, first, second in (("ab", p.a, p.b), ("ba", p.b, p.a)):
                prompt = render_pairwise_prompt(self.rubric, p.problem, first, second, p.reference)
                for r in range(self.options.repeats):
                    jobs.append(_Job(f"{p.pair_id}/{order}/r{r}", f"{p.pair_id}/{order}", r, prompt, True))
        done = self._run(jobs)
        rows = []
        for job in jobs:
            pair_id, order = job.key_id.rsplit("/", 1)
            scores, raw, error, method, attempts = done[job.request_id]
            prefs = {}
            for d in self.rubric.names:
                if scores is None:
                    prefs[f"prefers_a_{d}"] = math.nan
                else:
                    first_won = scores[d] == 1
                    prefs[f"prefers_a_{d}"] = float(first_won if order == "ab" else not first_won)
            rows.append(
                {
                    "pair_id": pair_id,
                    "order": order,
                    "judge_id": self.judge_id,
                    "rubric_hash": self._rubric_hash,
                    "repeat": job.repeat,
                    **prefs,
                    "raw": raw,
                    "error": error,
                    "parse_method": method,
                    "attempts": attempts,
                }
            )
        df = pd.DataFrame(rows)
        df["error"] = df["error"].astype("string")
        return df


def _check_unique(ids: Sequence[str], what: str) -> None:
    seen: set[str] = set()
    for i in ids:
        if i in seen:
            raise UserError(f"{what} {i!r} appears twice in the items to judge; ids must be unique")
        seen.add(i)


def _judgment_frame(rows: list[dict[str, object]], dims: Sequence[str]) -> pd.DataFrame:
    df = pd.DataFrame(rows)
    if df.empty:
        df = pd.DataFrame(
            columns=[
                "trace_id",
                "judge_id",
                "rubric_hash",
                "repeat",
                *dims,
                "raw",
                "error",
                "parse_method",
                "attempts",
            ]
        )
    df["error"] = df["error"].astype("string")
    for d in dims:
        df[d] = df[d].astype(float)
    return df


def aggregate_repeats(judgments: pd.DataFrame, dims: Sequence[str]) -> pd.DataFrame:
    """Per trace: mean and standard deviation of each dimension over valid repeats.

    Columns ``<dim>`` (mean), ``<dim>_std`` (population std; 0 for one repeat),
    ``n_valid`` and ``n_errors``. A trace whose repeats all failed has NaN means.
    """
    valid = judgments["error"].isna() if "error" in judgments else pd.Series(True, index=judgments.index)
    g = judgments[valid].groupby("trace_id", sort=False)[list(dims)]
    out = g.mean()
    std = g.std(ddof=0).add_suffix("_std")
    counts = judgments.groupby("trace_id", sort=False).size().rename("n")
    n_valid = valid.groupby(judgments["trace_id"], sort=False).sum().rename("n_valid")
    res = pd.concat([out, std], axis=1).reindex(counts.index)
    res["n_valid"] = n_valid.astype(int)
    res["n_errors"] = (counts - n_valid).astype(int)
    return res.reset_index().replace({np.inf: np.nan})
