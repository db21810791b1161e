"""``prefdelta eval`` subcommands: run suites on any model, compare two models, lm-eval.

The bare ``prefdelta eval`` runs the study's eval stage (arith suites on the zoo and the
trained students); these subcommands evaluate any model outside a study:

    prefdelta eval run --suite math_id --model ./ckpt --data-dir ../shared/datasets
    prefdelta eval run --suite code_ood --model adapter/ --base Qwen/Qwen2.5-0.5B
    prefdelta eval run --suite stem_ood --backend openai --url http://host:8000/v1 --model NAME
    prefdelta eval compare MODEL_A MODEL_B
    prefdelta eval lm-eval --tasks gsm8k,humaneval --model ./ckpt --data-dir ../shared/datasets
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from prefdelta.cli.common import ConfigOpt, ForceOpt, WorkspaceOpt, context
from prefdelta.errors import UserError

ModelOpt = Annotated[
    str,
    typer.Option(
        "--model", "-m", help="checkpoint folder, LoRA adapter folder, hub id, or served model name"
    ),
]
BackendOpt = Annotated[str, typer.Option("--backend", "-b", help="hf, vllm or openai")]
BaseOpt = Annotated[
    str | None,
    typer.Option("--base", help="base model of a LoRA adapter [default: from adapter_config.json]"),
]
ModelIdOpt = Annotated[
    str | None, typer.Option("--model-id", help="model_id in the evals table [default: folder name / hub id]")
]
DataDirOpt = Annotated[
    Path | None, typer.Option("--data-dir", "-d", help="local benchmark mirror [env PREFDELTA_DATA_DIR]")
]
LimitOpt = Annotated[
    int | None, typer.Option("--limit", help="first N problems of each benchmark (smoke runs)")
]
ThreadsOpt = Annotated[int, typer.Option("--threads", help="torch threads")]


def _show(df, columns: list[str]) -> None:
    import pandas as pd

    with pd.option_context(
        "display.width", 200, "display.max_columns", 20, "display.float_format", "{:.3f}".format
    ):
        typer.echo(df[[c for c in columns if c in df]].to_string(index=False))


def _lmeval(
    model: str,
    tasks: str,
    backend: str,
    base: str | None,
    model_id: str | None,
    data_dir: Path | None,
    limit: int | None,
    batch_size: int,
    device: str,
    max_gen_toks: int | None,
    builtin_tasks: bool,
    threads: int,
    workspace: Path | None,
) -> None:
    import torch

    from prefdelta.evaluate import lmeval
    from prefdelta.evaluate.models import ModelSpec, checkpoint_hash
    from prefdelta.workspace import Workspace

    torch.set_num_threads(threads)
    spec = ModelSpec(model, backend, base, None, model_id)
    names = [t.strip() for t in tasks.split(",") if t.strip()]
    if not names:
        raise UserError("--tasks: give at least one task (e.g. gsm8k,humaneval)")
    gen = {"max_gen_toks": max_gen_toks} if max_gen_toks else None
    results = lmeval.run(
        spec, names, data_dir or "", limit, batch_size, device, gen, builtin_tasks=builtin_tasks
    )
    rows = lmeval.write(Workspace(workspace), results, spec.id, checkpoint_hash(spec))
    _show(rows, ["suite", "benchmark", "metric", "value", "ci_low", "ci_high", "n"])


def build_app(help_text: str) -> typer.Typer:
    """The ``eval`` sub-app: bare ``prefdelta eval`` runs the study's eval stage, or
    lm-evaluation-harness with ``--engine lm-eval --tasks … --model …``."""

    app = typer.Typer(help=help_text, invoke_without_command=True)

    @app.callback(invoke_without_command=True)
    def _run(
        ctx: typer.Context,
        config: ConfigOpt = None,
        workspace: WorkspaceOpt = None,
        force: ForceOpt = False,
        engine: Annotated[
            str,
            typer.Option("--engine", help="stage: the study's eval stage; lm-eval: lm-evaluation-harness"),
        ] = "stage",
        tasks: Annotated[
            str | None,
            typer.Option("--tasks", "-t", help="with --engine lm-eval: gsm8k,math500,mmlu_stem,humaneval"),
        ] = None,
        model: Annotated[
            str | None,
            typer.Option("--model", "-m", help="with --engine lm-eval: checkpoint folder or hub id"),
        ] = None,
        backend: BackendOpt = "hf",
        data_dir: DataDirOpt = None,
        limit: LimitOpt = None,
        device: Annotated[str, typer.Option("--device", help="with --engine lm-eval: cpu, cuda …")] = "cpu",
        max_gen_toks: Annotated[
            int | None,
            typer.Option("--max-gen-toks", help="with --engine lm-eval: override the tasks' budget"),
        ] = None,
    ) -> None:
        if ctx.invoked_subcommand is not None:
            return
        if engine == "stage":
            from prefdelta.study.stages import STAGES

            cfg, ws = context(config, workspace)
            STAGES["eval"](ws, cfg, force=force)
        elif engine == "lm-eval":
            if not tasks or not model:
                raise UserError(
                    "--engine lm-eval needs --tasks (e.g. gsm8k,humaneval) and --model (a checkpoint folder)"
                )
            _lmeval(
                model,
                tasks,
                backend,
                None,
                None,
                data_dir,
                limit,
                8,
                device,
                max_gen_toks,
                False,
                2,
                workspace,
            )
        else:
            raise UserError(f"--engine must be 'stage' or 'lm-eval', got {engine!r}")

    _run.__doc__ = help_text
    return app


def register(app: typer.Typer) -> None:
    """Add ``run``, ``compare``, ``lm-eval``, ``suites`` and ``sandbox`` to ``prefdelta eval``."""

    @app.command("run")
    def run_cmd(
        model: ModelOpt,
        suite: Annotated[list[str], typer.Option("--suite", "-s", help="built-in suite name or YAML path")],
        backend: BackendOpt = "hf",
        base: BaseOpt = None,
        url: Annotated[
            str | None, typer.Option("--url", help="base URL of a served model (backend openai)")
        ] = None,
        model_id: ModelIdOpt = None,
        data_dir: DataDirOpt = None,
        limit: LimitOpt = None,
        workers: Annotated[int, typer.Option("--workers", help="grading processes / sandboxes at once")] = 2,
        batch_size: Annotated[int, typer.Option("--batch-size", help="hf backend batch size")] = 32,
        threads: ThreadsOpt = 2,
        workspace: WorkspaceOpt = None,
    ) -> None:
        """Evaluate one model on suites; rows go to evals, every sample to eval_samples."""
        import torch

        from prefdelta.evaluate.models import ModelSpec, checkpoint_hash, make_backend
        from prefdelta.evaluate.runner import evaluate_suite
        from prefdelta.evaluate.suites import load_suite
        from prefdelta.progress import info
        from prefdelta.workspace import Workspace

        torch.set_num_threads(threads)
        specs = [load_suite(s) for s in suite]
        spec = ModelSpec(model, backend, base, url, model_id)
        ws = Workspace(workspace)
        digest = checkpoint_hash(spec)
        cache: dict[str, object] = {}

        def factory():
            if "backend" not in cache:
                cache["backend"] = make_backend(spec, batch_size)
            return cache["backend"]

        for s in specs:
            rows = evaluate_suite(ws, s, factory, spec.id, digest, data_dir, limit, workers=workers, log=info)
            _show(rows, ["suite", "benchmark", "level", "metric", "value", "ci_low", "ci_high", "n"])

    @app.command("compare")
    def compare_cmd(
        model_a: Annotated[str, typer.Argument(help="model_id of the baseline")],
        model_b: Annotated[str, typer.Argument(help="model_id compared with it (diff = B - A)")],
        suite: Annotated[str | None, typer.Option("--suite", "-s", help="only this suite")] = None,
        workspace: WorkspaceOpt = None,
    ) -> None:
        """Per-benchmark B - A with paired-bootstrap 95% intervals over shared problems."""
        from prefdelta.evaluate.compare import compare_models
        from prefdelta.workspace import Workspace

        samples = Workspace(workspace).read_table("eval_samples", required_by="eval compare")
        if suite is not None:
            samples = samples[samples["suite"] == suite]
            if samples.empty:
                raise UserError(f"no samples of suite {suite!r} in eval_samples")
        _show(
            compare_models(samples, model_a, model_b),
            ["suite", "benchmark", "metric", "n", "value_a", "value_b", "diff", "ci_low", "ci_high"],
        )

    @app.command("lm-eval")
    def lmeval_cmd(
        model: ModelOpt,
        tasks: Annotated[
            str, typer.Option("--tasks", "-t", help="comma-separated: gsm8k,math500,mmlu_stem,humaneval")
        ],
        backend: BackendOpt = "hf",
        base: BaseOpt = None,
        model_id: ModelIdOpt = None,
        data_dir: DataDirOpt = None,
        limit: LimitOpt = None,
        batch_size: Annotated[int, typer.Option("--batch-size")] = 8,
        device: Annotated[str, typer.Option("--device", help="cpu, cuda, cuda:0 …")] = "cpu",
        max_gen_toks: Annotated[
            int | None, typer.Option("--max-gen-toks", help="override the tasks' budget")
        ] = None,
        builtin_tasks: Annotated[
            bool, typer.Option("--builtin-tasks", help="also allow lm-eval's own tasks (most need a hub)")
        ] = False,
        threads: ThreadsOpt = 2,
        workspace: WorkspaceOpt = None,
    ) -> None:
        """Run lm-evaluation-harness offline on the shipped local-file tasks; rows go to evals."""
        _lmeval(
            model,
            tasks,
            backend,
            base,
            model_id,
            data_dir,
            limit,
            batch_size,
            device,
            max_gen_toks,
            builtin_tasks,
            threads,
            workspace,
        )

    @app.command("suites")
    def suites_cmd() -> None:
        """List the built-in suites and their benchmarks."""
        from prefdelta.evaluate.suites import builtin_suites, load_suite

        for name in builtin_suites():
            s = load_suite(name)
            benches = ", ".join(f"{b.name} ({b.metric}, n={b.samples})" for b in s.benchmarks)
            typer.echo(f"{name} [{s.domain}-domain]: {benches}")

    @app.command("sandbox")
    def sandbox_cmd() -> None:
        """Say what the code sandbox isolates on this machine."""
        from prefdelta.evaluate.sandbox import describe

        typer.echo(describe())
