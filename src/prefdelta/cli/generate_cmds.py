"""Extra ``prefdelta generate`` subcommands for real problems and real generators.

    prefdelta generate problems --source gsm8k --split test --data-dir ../shared/datasets -w ws
    prefdelta generate problems --path mine.jsonl --prompt-column q --answer-column a -w ws
    prefdelta generate run --generators gens.yaml -w ws [--source gsm8k] [--limit 100]
    prefdelta generate templates

``run`` samples every generator of the YAML on the workspace's ``problems`` table and
writes ``traces``, ``generation_errors`` and ``generators`` (capability = outcome-graded
accuracy of each generator on those problems). Killed, it resumes where it stopped.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import pandas as pd
import typer
import yaml

from prefdelta.cli.common import WorkspaceOpt
from prefdelta.errors import UserError
from prefdelta.progress import bar, info
from prefdelta.workspace import Workspace

DataDirOpt = Annotated[
    Path | None,
    typer.Option("--data-dir", help="local benchmark mirror [env PREFDELTA_DATA_DIR; else the data hub]"),
]


def _problems(
    source: str | None,
    split: str,
    data_dir: Path | None,
    path: Path | None,
    prompt_column: str,
    answer_column: str | None,
    solution_column: str | None,
    answer_format: str,
    name: str,
) -> pd.DataFrame:
    from prefdelta.sources.custom import ColumnMap, load_custom
    from prefdelta.sources.registry import load_source

    if (source is None) == (path is None):
        raise UserError("give either --source (a built-in benchmark) or --path (your own file)")
    if source is not None:
        return load_source(source, split, data_dir)
    if answer_format not in ("as_is", "gsm8k", "boxed"):
        raise UserError(f"--answer-format must be as_is, gsm8k or boxed; got '{answer_format}'")
    columns = ColumnMap(
        prompt=prompt_column, reference_answer=answer_column or None, reference_solution=solution_column
    )
    assert path is not None
    return load_custom(path, columns, source=name, split=split, answer_format=answer_format)  # type: ignore[arg-type]


def load_generators_file(path: Path):  # -> GeneratorsFile
    """The ``--generators`` YAML, validated; errors name the file and the field."""
    from prefdelta.config import parse_config
    from prefdelta.settings.generate import GeneratorsFile

    if not path.is_file():
        raise UserError(f"generators file {path} not found")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}:" if mark else ""
        raise UserError(f"{path}:{where} not valid YAML") from None
    return parse_config(data, str(path), GeneratorsFile)


def capability(problems: pd.DataFrame, traces: pd.DataFrame, answer_format: dict[str, str]) -> float | None:
    """Outcome-graded accuracy of traces (``gsm8k``/``boxed``/``choice`` answers); None if ungradable."""
    from prefdelta.judge.outcome import KINDS, grade_many

    if not len(traces):
        return None
    ref = problems.set_index("problem_id")
    kinds = [answer_format.get(ref.at[p, "source"], "as_is") for p in traces["problem_id"]]
    keep = [i for i, k in enumerate(kinds) if k in KINDS]
    if not keep:
        return None
    verdicts = grade_many(
        [kinds[i] for i in keep],
        [traces["text"].iloc[i] for i in keep],
        [ref.at[traces["problem_id"].iloc[i], "reference_answer"] for i in keep],
        workers=None if len(keep) >= 2000 else 1,  # a process pool costs seconds to start
    )
    return sum(v.correct for v in verdicts) / len(verdicts)


def answer_format_of(template, source: str) -> str:
    """The template's answer format, or the source's default one for templates without one (``raw``)."""
    from prefdelta.generate.prompts import template_for_source

    return (
        template.answer_format
        if template.answer_format != "as_is"
        else template_for_source(source).answer_format
    )


def register(app: typer.Typer) -> None:
    @app.command("problems")
    def problems_cmd(
        source: Annotated[str | None, typer.Option(help="built-in benchmark (gsm8k, math500, …)")] = None,
        split: Annotated[str, typer.Option(help="split to load")] = "test",
        data_dir: DataDirOpt = None,
        path: Annotated[Path | None, typer.Option(help="your own JSONL / Parquet / dataset folder")] = None,
        prompt_column: Annotated[str, typer.Option(help="--path: column with the problem")] = "question",
        answer_column: Annotated[str | None, typer.Option(help="--path: column with the answer")] = "answer",
        solution_column: Annotated[str | None, typer.Option(help="--path: column with a solution")] = None,
        answer_format: Annotated[str, typer.Option(help="--path: as_is, gsm8k (#### N) or boxed")] = "as_is",
        name: Annotated[str, typer.Option(help="--path: source name of the rows")] = "custom",
        limit: Annotated[int | None, typer.Option(help="keep the first N problems")] = None,
        append: Annotated[
            bool, typer.Option(help="add to the problems table instead of replacing it")
        ] = False,
        workspace: WorkspaceOpt = None,
    ) -> None:
        """Write real problems (a benchmark or your own file) to the workspace's problems table."""
        df = _problems(
            source, split, data_dir, path, prompt_column, answer_column, solution_column, answer_format, name
        )
        if limit is not None:
            df = df.head(limit)
        ws = Workspace(workspace)
        shard = f"{source or name}-{split}"
        ws.write_shard("problems", shard, df)
        if not append:
            ws.prune_shards("problems", keep={shard})
        typer.echo(f"wrote {len(df)} problems ({source or name}/{split}) to {ws.table_dir('problems')}")

    @app.command("run")
    def run_cmd(
        generators: Annotated[Path, typer.Option("--generators", "-g", help="generators YAML")],
        source: Annotated[str | None, typer.Option(help="only problems of this source")] = None,
        split: Annotated[str | None, typer.Option(help="only problems of this split")] = None,
        limit: Annotated[int | None, typer.Option(help="only the first N problems")] = None,
        only: Annotated[list[str] | None, typer.Option(help="only these generator ids")] = None,
        flush_every: Annotated[int, typer.Option(help="results per shard written (resume granularity)")] = 64,
        workspace: WorkspaceOpt = None,
    ) -> None:
        """Sample every generator of a YAML on the workspace's problems; resumable."""
        from prefdelta.generate.factory import has_chat_template, make_backend
        from prefdelta.generate.runner import ERRORS, GeneratorRun, generate_traces

        spec_file = load_generators_file(generators)
        ws = Workspace(workspace)
        problems = ws.read_table("problems", required_by="generate run")
        if source is not None:
            problems = problems[problems["source"] == source]
        if split is not None:
            problems = problems[problems["split"] == split]
        if limit is not None:
            problems = problems.head(limit)
        if not len(problems):
            raise UserError("no problems selected (check --source / --split, or run `generate problems`)")
        rows = []
        old = ws.read_table("generators") if ws.has_table("generators") else pd.DataFrame()
        for spec in spec_file.generators:
            if only and spec.id not in only:
                continue
            backend = make_backend(spec)
            chat = spec.prompt_style == "chat" or (spec.prompt_style == "auto" and has_chat_template(backend))
            run = GeneratorRun(
                spec.id,
                backend,
                spec.model,
                spec.sampling_for(spec_file.sampling),
                chat=chat,
                template=spec.template,
                provenance=spec.model_dump(exclude={"id", "family", "params"}),
            )
            total = len(problems) * run.sampling.samples
            with bar(f"generate: {spec.id}", total) as advance:
                traces = generate_traces(ws, run, problems, flush_every=flush_every, progress=advance)
            fmt = {src: answer_format_of(run.template_of(src), src) for src in set(problems["source"])}
            errors = ws.read_table(ERRORS) if ws.has_table(ERRORS) else pd.DataFrame(columns=["generator_id"])
            n_errors = int((errors["generator_id"] == spec.id).sum())
            acc = capability(problems, traces, fmt)
            rows.append(
                {
                    "generator_id": spec.id,
                    "family": spec.family,
                    "params": spec.params,
                    "backend": spec.backend,
                    "model": spec.model,
                    "sampling": json.dumps(run.sampling.model_dump(), sort_keys=True),
                    "capability": acc,
                    "n_traces": len(traces),
                    "n_errors": n_errors,
                }
            )
            shown = "n/a" if acc is None else f"{acc:.3f}"
            info(f"{spec.id}: {len(traces)} traces, {n_errors} errors, capability {shown}")
        new = pd.DataFrame(rows)
        if len(old) and "generator_id" in old:
            old = old[~old["generator_id"].isin(new["generator_id"])]
            new = pd.concat([old, new], ignore_index=True)
        ws.write_table("generators", new)

    @app.command("templates")
    def templates_cmd() -> None:
        """List the built-in prompt templates and the sources they are the default for."""
        from prefdelta.generate.prompts import builtin_templates

        for name, t in sorted(builtin_templates().items()):
            typer.echo(f"{name:16s} answer={t.answer_format:7s} sources={', '.join(t.sources) or '-'}")
