"""Independent jobs of a stage (zoo models, training runs, model evaluations) in worker processes.

Why: the study's models on a CPU are tiny, and a tiny model does not use two cores well
from one process (most of a step is Python and small matrix products). Two processes
with one torch thread each finish two models in about the time of one. Each job runs
with exactly one thread, so a job's result does not depend on how many workers ran it.
GPU users keep one worker (the default): the device is shared.

Workers come from a fork server (where the platform has one) that imports torch and
``transformers`` once: a fresh interpreter spends about 7 s on those imports on a 2-core
CPU, and a study starts three pools (zoo, train, eval). Forking from a server that has
only imported modules (no thread pool, no CUDA context started) is safe, unlike forking
the main process after it has run torch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from prefdelta.progress import bar

T = TypeVar("T")

# what every worker imports anyway; an import that fails here is only retried in the worker.
# The project's modules are named without their package prefix: a literal "prefdelta.x.y"
# counts as an import in stage cache keys (study/codehash.py), and preloading changes no result.
PRELOAD = [
    "torch",
    "transformers",
    "transformers.modeling_utils",
    "transformers.models.llama.modeling_llama",
    "transformers.models.qwen2.modeling_qwen2",
    "transformers.models.gpt2.modeling_gpt2",
    "pandas",
    "pyarrow.parquet",
    *(
        f"{__package__}.{m}"
        for m in ("zoo.stage", "train.stage", "evaluate.stage", "generate.stage", "study.spec")
    ),
]


def context():  # -> multiprocessing context
    """The start method of the workers: a fork server preloading :data:`PRELOAD`, else spawn."""
    import multiprocessing as mp

    if "forkserver" not in mp.get_all_start_methods():
        return mp.get_context("spawn")
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOAD)
    return ctx


def warm_up() -> None:
    """Start the fork server now, so that its imports overlap the caller's own work."""
    import multiprocessing as mp

    if "forkserver" in mp.get_all_start_methods():
        from multiprocessing import forkserver

        context()
        forkserver.ensure_running()


def _one_thread(fn: Callable[[Any], T], job: Any) -> T:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return fn(job)
    finally:
        torch.set_num_threads(before)


def run_jobs(
    fn: Callable[[Any], T],
    jobs: Sequence[Any],
    workers: int,
    label: str,
    cost: Callable[[Any], float] | None = None,
) -> list[T]:
    """``[fn(job) for job in jobs]``, on ``workers`` processes when more than one.

    ``fn`` must be a module-level function and ``jobs`` picklable. Results come back in
    the order of ``jobs``; the first failure is raised (the others are left to finish).
    ``cost``: a job's expected run time in any unit; the costliest jobs start first, so
    that the last job to finish is a short one and no core idles long at the end.
    """
    if not jobs:
        return []
    n = min(workers, len(jobs))
    with bar(f"{label}: {len(jobs)} on {n} process{'es' if n > 1 else ''}", len(jobs)) as advance:
        if n <= 1:
            out = []
            for job in jobs:
                out.append(_one_thread(fn, job))
                advance(1)
            return out
        from concurrent.futures import ProcessPoolExecutor, as_completed

        from prefdelta import logs

        # a worker starts with logging unconfigured: it gets the CLI's level, if any
        with ProcessPoolExecutor(
            n, mp_context=context(), initializer=logs.configure_worker, initargs=(logs.active_level(),)
        ) as pool:
            order = sorted(range(len(jobs)), key=lambda i: -cost(jobs[i])) if cost else range(len(jobs))
            futures = {pool.submit(_one_thread, fn, jobs[i]): i for i in order}
            results: dict[int, T] = {}
            for future in as_completed(futures):
                results[futures[future]] = future.result()
                advance(1)
        return [results[i] for i in range(len(jobs))]
