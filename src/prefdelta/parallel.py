"""Independent jobs of a stage (zoo models, training runs, model evaluations) in worker processes.

Why: the study's models on a CPU are tiny, and a tiny model does not use two cores well
from one process (most of a step is Python and small matrix products). Two processes
with one torch thread each finish two models in about the time of one. Each job runs
with exactly one thread, so a job's result does not depend on how many workers ran it.
GPU users keep one worker (the default): the device is shared.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from prefdelta.progress import bar

T = TypeVar("T")


def _one_thread(fn: Callable[[Any], T], job: Any) -> T:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return fn(job)
    finally:
        torch.set_num_threads(before)


def run_jobs(fn: Callable[[Any], T], jobs: Sequence[Any], workers: int, label: str) -> list[T]:
    """``[fn(job) for job in jobs]``, on ``workers`` spawned processes when more than one.

    ``fn`` must be a module-level function and ``jobs`` picklable. Results come back in
    the order of ``jobs``; the first failure is raised (the others are left to finish).
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
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor, as_completed

        from prefdelta import logs

        # a spawned worker starts with logging unconfigured: it gets the CLI's level, if any
        spawn = mp.get_context("spawn")
        with ProcessPoolExecutor(
            n, mp_context=spawn, initializer=logs.configure_worker, initargs=(logs.active_level(),)
        ) as pool:
            futures = {pool.submit(_one_thread, fn, job): i for i, job in enumerate(jobs)}
            results: dict[int, T] = {}
            for future in as_completed(futures):
                results[futures[future]] = future.result()
                advance(1)
        return [results[i] for i in range(len(jobs))]
