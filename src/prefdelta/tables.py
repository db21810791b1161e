"""The declared Arrow schema of every workspace table, and the casts that enforce it.

Why: a table is a folder of Parquet shards written at different times by different
code paths (a generator's batches, one shard per judge or per evaluated benchmark, an
import). Left to inference, the same column came out null-typed in a shard whose values
were all missing and ``large_string`` in the next, and then ``pandas.read_parquet(folder)``,
``pyarrow.dataset`` and ``datasets.load_dataset("parquet", …)`` all refuse the table.
So every table declares its columns once, here; every shard is written with exactly the
table's schema (missing nullable columns as nulls, declared order, declared types), and a
shard written by an older version is cast to it on read (see
:meth:`prefdelta.workspace.Workspace.repair`).

Columns a table does not declare:

- a table may declare *patterns* (``judgments``: the dimensions of a custom rubric,
  ``pairs``: their deltas): a matching column is cast to the pattern's type;
- any other column written by project code is a bug — :class:`UndeclaredColumn` names
  it and this file, so a new column gets declared (the tests write every table through
  the real stages);
- an import of the user's files (``pairs import``) drops the columns no stage reads,
  and says which (``extra="drop"``);
- a shard written by an older version keeps its extra columns (nothing is lost); every
  shard of the table gets them, null where absent.

Tables not declared here (a name a user gives on the command line) keep their inferred
types, with all-null columns stored as strings and every shard given the union of the
columns.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

import pandas as pd
import pyarrow as pa

from prefdelta.errors import UserError

STR = pa.large_string()
INT = pa.int64()
FLOAT = pa.float64()
BOOL = pa.bool_()

ExtraPolicy = Literal["error", "drop"]


class UndeclaredColumn(ValueError):
    """Project code wrote a column its table does not declare (a bug: declare it)."""


@dataclass(frozen=True)
class Pattern:
    """Undeclared columns whose name matches ``regex`` are allowed, with type ``type``."""

    regex: str
    type: pa.DataType
    why: str

    def matches(self, name: str) -> bool:
        return re.fullmatch(self.regex, name) is not None


@dataclass(frozen=True)
class Table:
    """One workspace table: its name, what it holds, its columns and allowed extra columns."""

    name: str
    doc: str
    columns: tuple[tuple[str, pa.DataType, str], ...]
    patterns: tuple[Pattern, ...] = field(default=())

    @property
    def schema(self) -> pa.Schema:
        return pa.schema([pa.field(n, t, nullable=True) for n, t, _ in self.columns])

    def pattern_type(self, name: str) -> pa.DataType | None:
        return next((p.type for p in self.patterns if p.matches(name)), None)


DIMENSIONS_DOC = "score 1–5 of the judge on this dimension (null: the judge gave none)"

TABLES: dict[str, Table] = {
    t.name: t
    for t in (
        Table(
            "problems",
            "The problems of the study, one row per problem, from every entry of `problems:` "
            "(written by the problems stage, or imported with `pairs import --problems`).",
            (
                ("problem_id", STR, "unique id: source, split and index"),
                ("source", STR, "the source it came from (arith, gsm8k, a file's name …)"),
                ("split", STR, "the source's split"),
                ("prompt", STR, "the problem as shown to a generator"),
                ("reference_answer", STR, "the exact answer the grader compares with"),
                ("reference_solution", STR, "a worked solution, when the source has one"),
                ("meta", STR, "JSON: the source's extra fields (the arith world's hidden graph …)"),
                ("grader", STR, "the grader of this problem's source"),
                ("problem_text", STR, "the bare statement when the prompt wraps it (imports)"),
            ),
        ),
        Table(
            "zoo",
            "The zoo models trained in the workspace (one row per model and snapshot).",
            (
                ("generator_id", STR, "the model's id (a generator id of the spec)"),
                ("family", STR, "model family (llama, gpt2, qwen2)"),
                ("params", INT, "parameter count"),
                ("path", STR, "its save_pretrained folder, relative to the workspace"),
                ("steps", INT, "training steps of this model or snapshot"),
                ("final_loss", FLOAT, "last training loss (null for a snapshot)"),
                ("train_seconds", FLOAT, "training time, pro rata for a snapshot"),
                ("spec", STR, "JSON: the zoo spec of the model"),
                ("key", STR, "cache key of the folder"),
            ),
        ),
        Table(
            "traces",
            "Every sampled trace, one row per (generator, problem, sample, seed); one shard "
            "per flushed batch of a generator (written by generate, or imported).",
            (
                ("trace_id", STR, "stable_hash(generator_id, problem_id, sample, seed)"),
                ("problem_id", STR, "the problem it answers"),
                ("generator_id", STR, "the generator that wrote it"),
                ("sample", INT, "index of the sample for this problem"),
                ("seed", INT, "sampling seed"),
                ("text", STR, "the completion"),
                ("finish_reason", STR, "stop, length, …"),
                ("prompt_tokens", INT, "tokens of the prompt"),
                ("n_tokens", INT, "tokens of the completion"),
                ("model", STR, "the model (folder or id) behind the generator"),
                ("backend", STR, "generation backend (zoo, hf, vllm, openai)"),
                ("template", STR, "prompt template name"),
                ("prompt_style", STR, "chat or completion"),
                ("sampling", STR, "JSON: temperature, top_p, max_tokens, stop, samples"),
                ("attempts", INT, "requests it took (retries included)"),
                ("created_at", FLOAT, "Unix time it was received"),
                ("prompt_text", STR, "the exact prompt text sent"),
                ("prompt_messages", STR, "JSON: the chat messages sent (null for completion prompts)"),
                ("is_correct", BOOL, "the published grade of an imported trace (null otherwise)"),
            ),
        ),
        Table(
            "generation_errors",
            "Generation requests that failed after the backend's retries (the latest error "
            "of each item that still has no trace).",
            (
                ("trace_id", STR, "the trace it would have been"),
                ("problem_id", STR, "the problem"),
                ("generator_id", STR, "the generator"),
                ("sample", INT, "sample index"),
                ("seed", INT, "sampling seed"),
                ("error", STR, "the error"),
                ("attempts", INT, "requests tried"),
                ("created_at", FLOAT, "Unix time of the failure"),
            ),
        ),
        Table(
            "generators",
            "One row per generator of the study, with its capability (exact accuracy on the problems).",
            (
                ("generator_id", STR, "the generator's id"),
                ("family", STR, "model family (null when unknown)"),
                ("params", FLOAT, "parameter count (null when unknown)"),
                ("backend", STR, "generation backend, or 'imported'"),
                ("model", STR, "the model behind it"),
                ("sampling", STR, "JSON: its sampling settings"),
                ("capability", FLOAT, "share of its traces graded correct"),
                ("n_traces", INT, "traces written"),
                ("n_errors", INT, "requests that failed"),
            ),
        ),
        Table(
            "judgments",
            "Every judge's scores of every trace, one shard per judge (one row per trace and "
            "repeat); `outcome` is the exact grade, never an opinion.",
            (
                ("trace_id", STR, "the judged trace"),
                ("judge_id", STR, "the judge"),
                ("rubric_hash", STR, "hash of the rubric (or the judge kind)"),
                ("repeat", INT, "repeat index of an LLM judge"),
                ("factuality", FLOAT, DIMENSIONS_DOC),
                ("strategy_coherence", FLOAT, DIMENSIONS_DOC),
                ("step_coherence", FLOAT, DIMENSIONS_DOC),
                ("numerical_precision", FLOAT, DIMENSIONS_DOC),
                ("signal_to_noise", FLOAT, DIMENSIONS_DOC),
                ("outcome", BOOL, "the exact grade of the trace"),
                ("raw", STR, "the judge's raw reply"),
                ("error", STR, "why there is no score (null: none)"),
                ("parse_method", STR, "how an LLM judge's reply was parsed"),
                ("attempts", INT, "requests an LLM judgment took"),
                ("n_annotations", INT, "calc: calculator annotations in the reference"),
                ("annotations_ok", INT, "calc: annotations reproduced correctly"),
                ("n_text_equations", INT, "calc: equations written in the trace"),
                ("text_equations_ok", INT, "calc: equations that hold"),
            ),
            (Pattern(r"[A-Za-z_][A-Za-z0-9_]*", FLOAT, "a dimension of a custom rubric"),),
        ),
        Table(
            "pairs",
            "Preference pairs (chosen, rejected) with their generator-level and sample-level deltas.",
            (
                ("pair_id", STR, "stable_hash(chosen_trace_id, rejected_trace_id)"),
                ("problem_id", STR, "the problem both traces answer"),
                ("strategy", STR, "the pairing strategy"),
                ("chosen_trace_id", STR, "chosen trace"),
                ("rejected_trace_id", STR, "rejected trace"),
                ("chosen_generator", STR, "generator of the chosen trace"),
                ("rejected_generator", STR, "generator of the rejected trace"),
                ("chosen_capability", FLOAT, "capability of the chosen side's generator"),
                ("rejected_capability", FLOAT, "capability of the rejected side's generator"),
                ("generator_gap", FLOAT, "chosen_capability - rejected_capability"),
                ("param_ratio", FLOAT, "parameters chosen / rejected (null when unknown)"),
                ("same_family", BOOL, "both generators of one family"),
                ("delta_factuality", FLOAT, "chosen - rejected score"),
                ("delta_strategy_coherence", FLOAT, "chosen - rejected score"),
                ("delta_step_coherence", FLOAT, "chosen - rejected score"),
                ("delta_numerical_precision", FLOAT, "chosen - rejected score"),
                ("delta_signal_to_noise", FLOAT, "chosen - rejected score"),
                ("chosen_correct", BOOL, "exact grade of the chosen trace"),
                ("rejected_correct", BOOL, "exact grade of the rejected trace"),
                ("delta_outcome", FLOAT, "chosen_correct - rejected_correct"),
                ("delta_aggregate", FLOAT, "weighted mean of the dimension deltas"),
                ("quadrant", STR, "CC, CW, WC or WW (chosen, rejected correct)"),
                ("flagged", BOOL, "the chosen trace scores below the rejected one"),
            ),
            (Pattern(r"delta_[A-Za-z0-9_]+", FLOAT, "the delta of a custom rubric's dimension"),),
        ),
        Table(
            "selections",
            "The pairs of every selection (one row per selected pair, in rank order).",
            (
                ("selection_id", STR, "the selection"),
                ("strategy", STR, "top, random, bottom, all, gen:…"),
                ("key", STR, "the delta it ranks by"),
                ("fraction", FLOAT, "fraction of the pool (null: a fixed k or all)"),
                ("k", INT, "pairs selected"),
                ("seed", INT, "seed of a random selection"),
                ("stratified", BOOL, "problems taken round-robin"),
                ("quadrants", STR, "comma-separated correctness quadrants of the pool"),
                ("pair_id", STR, "a selected pair"),
                ("rank", INT, "its rank in the selection"),
                ("chosen_generator", STR, "a generator-pair selection's chosen generator"),
                ("rejected_generator", STR, "a generator-pair selection's rejected generator"),
            ),
        ),
        Table(
            "runs",
            "Training runs: one per selection × variant × seed, with where the checkpoint is.",
            (
                ("run_id", STR, "the run"),
                ("algorithm", STR, "dpo or kto"),
                ("variant", STR, "variant name of the spec"),
                ("base_model", STR, "the student"),
                ("base_path", STR, "the student's folder (relative to the workspace) or hub id"),
                ("selection_id", STR, "the selection it trained on"),
                ("strategy", STR, "that selection's strategy"),
                ("n_pairs", INT, "pairs trained on"),
                (
                    "pair_updates",
                    INT,
                    "pairs of all its batches (pairs per epoch × epochs): the run's budget",
                ),
                ("hyper", STR, "JSON: the hyper-parameters"),
                ("seed", INT, "training seed"),
                ("lora", BOOL, "trained with LoRA"),
                ("adapter", BOOL, "the checkpoint is an adapter (not merged)"),
                ("launcher", STR, "in-process or accelerate"),
                ("checkpoint", STR, "the final checkpoint folder"),
                ("metrics", STR, "the metrics JSONL"),
                ("final_loss", FLOAT, "last training loss"),
                ("final_margin", FLOAT, "last reward margin"),
                ("n_truncated", INT, "examples truncated to max_length"),
                ("n_dropped", INT, "examples dropped (prompt too long)"),
                ("onpolicy_chosen", FLOAT, "student log-prob per token of the chosen traces"),
                ("onpolicy_rejected", FLOAT, "student log-prob per token of the rejected traces"),
            ),
        ),
        Table(
            "evals",
            "Evaluation results: per model, suite and benchmark (and a suite row), with "
            "bootstrap 95% intervals; one shard per model and suite.",
            (
                ("model_id", STR, "the evaluated model (generator, run or student)"),
                ("checkpoint_hash", STR, "hash of its weights"),
                ("suite", STR, "the suite"),
                ("domain", STR, "in or out"),
                ("benchmark", STR, "the benchmark (the suite's name on a suite row)"),
                ("level", STR, "benchmark or suite"),
                ("metric", STR, "accuracy, pass@k, macro_mean …"),
                ("value", FLOAT, "the metric"),
                ("n", INT, "problems"),
                ("samples_per_problem", INT, "samples drawn per problem"),
                ("ci_low", FLOAT, "lower end of the 95% interval"),
                ("ci_high", FLOAT, "upper end of the 95% interval"),
            ),
        ),
        Table(
            "eval_samples",
            "Every graded evaluation sample; one shard per model, suite and benchmark.",
            (
                ("model_id", STR, "the evaluated model"),
                ("checkpoint_hash", STR, "hash of its weights"),
                ("suite", STR, "the suite"),
                ("benchmark", STR, "the benchmark"),
                ("problem_id", STR, "the problem"),
                ("sample", INT, "sample index"),
                ("text", STR, "the completion"),
                ("finish_reason", STR, "stop, length, … (null from lm-eval)"),
                ("error", STR, "why generation failed (null: it did not)"),
                ("predicted", STR, "the answer extracted (null: none found)"),
                ("correct", BOOL, "graded correct"),
            ),
        ),
        Table(
            "pairwise_judgments",
            "`judge pairwise`: an LLM judge's side-by-side preferences, in both orders.",
            (
                ("pair_id", STR, "the pair"),
                ("order", STR, "ab (chosen first) or ba"),
                ("judge_id", STR, "the judge"),
                ("rubric_hash", STR, "hash of the rubric"),
                ("repeat", INT, "repeat index"),
                ("raw", STR, "the raw reply"),
                ("error", STR, "why there is no preference (null: none)"),
                ("parse_method", STR, "how the reply was parsed"),
                ("attempts", INT, "requests it took"),
            ),
            (Pattern(r"prefers_a_[A-Za-z0-9_]+", FLOAT, "1.0 when the first trace wins a dimension"),),
        ),
    )
}


def declared(table: str) -> Table | None:
    """The declaration of ``table`` (``None`` for a table this file does not know)."""
    return TABLES.get(table)


def _storable(t: pa.DataType) -> pa.DataType:
    """The type an undeclared column is stored with: all-null columns as strings."""
    return STR if pa.types.is_null(t) else t


def merge_types(a: pa.DataType, b: pa.DataType) -> pa.DataType:
    """One type for an undeclared column seen with ``a`` in one shard and ``b`` in another."""
    if a.equals(b) or pa.types.is_null(b):
        return a
    if pa.types.is_null(a):
        return b
    try:
        merged = pa.unify_schemas(
            [pa.schema([("c", a)]), pa.schema([("c", b)])], promote_options="permissive"
        )
        return merged.field("c").type
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        return STR


def effective_schema(table: str, schemas: Iterable[pa.Schema]) -> pa.Schema:
    """The schema every shard of ``table`` is written with, given the shards' own schemas:
    the declared columns, then the undeclared ones any shard has (in first-seen order)."""
    spec = declared(table)
    fields: dict[str, pa.DataType] = {n: t for n, t, _ in spec.columns} if spec else {}
    extra: dict[str, pa.DataType] = {}
    for schema in schemas:
        for f in schema:
            if f.name in fields:
                continue
            typ = spec.pattern_type(f.name) if spec else None
            if typ is None:
                typ = merge_types(extra[f.name], f.type) if f.name in extra else f.type
            extra[f.name] = typ
    return pa.schema(
        [pa.field(n, t) for n, t in fields.items()] + [(n, _storable(t)) for n, t in extra.items()]
    )


def _cast(
    column: pa.ChunkedArray | pa.Array, typ: pa.DataType, table: str, name: str, where: str
) -> pa.ChunkedArray | pa.Array:
    if column.type.equals(typ):
        return column
    if pa.types.is_null(column.type):
        return pa.nulls(len(column), typ)
    try:
        return column.cast(typ, safe=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        raise UserError(
            f"{where}table '{table}', column '{name}': expected {typ} values, got {column.type} "
            "that cannot be converted"
        ) from None


def conform(data: pa.Table, table: str, schema: pa.Schema, where: str = "") -> pa.Table:
    """``data`` with exactly ``schema``: columns added as nulls, ordered and cast.

    ``schema`` comes from :func:`effective_schema`, so it holds every column of ``data``.
    ``where`` prefixes a cast error (the shard's path, for a shard read from disk).
    """
    n = data.num_rows
    arrays = []
    for f in schema:
        if f.name in data.column_names:
            arrays.append(_cast(data.column(f.name), f.type, table, f.name, where))
        else:
            arrays.append(pa.nulls(n, f.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def _to_arrow(series: pd.Series, table: str, name: str, target: pa.DataType | None) -> pa.Array:
    """A column as Arrow; mixed values (text and numbers) become text for a text column."""
    try:
        return pa.array(series, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as err:
        if target is not None and pa.types.is_large_string(target):
            return pa.array([None if _missing(v) else str(v) for v in series], type=target)
        raise UserError(f"table '{table}', column '{name}': values Arrow cannot store ({err})") from None


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and value != value) or value is pd.NA


def from_frame(table: str, df: pd.DataFrame, extra: ExtraPolicy = "error") -> tuple[pa.Table, list[str]]:
    """``df`` as an Arrow table with its declared columns cast and its extra columns checked.

    Returns the table (declared columns first, in order; allowed extra columns after) and
    the names of the columns dropped under ``extra="drop"``. The result still lacks the
    declared columns ``df`` does not have: :func:`conform` adds them.
    """
    spec = declared(table)
    if not df.columns.is_unique:
        dup = df.columns[df.columns.duplicated()][0]
        raise UserError(f"table '{table}': column '{dup}' appears twice")
    cols: dict[str, pa.Array] = {}
    dropped: list[str] = []
    names = [n for n, _, _ in spec.columns] if spec else []
    for name in [*[n for n in names if n in df.columns], *[c for c in df.columns if c not in names]]:
        key = str(name)
        target = (spec.schema.field(key).type if key in names else spec.pattern_type(key)) if spec else None
        arr = _to_arrow(df[name], table, key, target)
        if spec is None:
            arr = _cast(arr, _storable(arr.type), table, key, "")
        elif key in names:
            arr = _cast(arr, spec.schema.field(key).type, table, key, "")
        else:
            typ = spec.pattern_type(key)
            if typ is None:
                if extra == "drop":
                    dropped.append(key)
                    continue
                raise UndeclaredColumn(
                    f"table '{table}': column '{key}' is not declared; add it to prefdelta/tables.py "
                    f"(declared: {', '.join(names)})"
                )
            try:
                arr = _cast(arr, typ, table, key, "")
            except UserError:
                if extra != "drop":
                    raise
                dropped.append(key)
                continue
        cols[key] = arr
    return pa.table(cols), dropped
