"""Worker processes of a stage: results in job order, one torch thread each, failures raised."""

from __future__ import annotations

import multiprocessing as mp
import os

import pytest

from prefdelta import parallel


def _square_and_threads(x: int) -> tuple[int, int, int]:
    import torch

    return x * x, torch.get_num_threads(), os.getpid()


def _preloaded(_: int) -> bool:
    import sys

    return "transformers.modeling_utils" in sys.modules


def _fail_on_three(x: int) -> int:
    if x == 3:
        raise ValueError(f"job {x} failed")
    return x


def test_jobs_run_on_worker_processes_in_order_with_one_thread() -> None:
    out = parallel.run_jobs(_square_and_threads, list(range(6)), workers=2, label="test")
    assert [r[0] for r in out] == [x * x for x in range(6)]
    assert {r[1] for r in out} == {1}
    pids = {r[2] for r in out}
    assert os.getpid() not in pids and 1 <= len(pids) <= 2


def test_a_failing_job_is_raised_in_the_caller() -> None:
    with pytest.raises(ValueError, match="job 3 failed"):
        parallel.run_jobs(_fail_on_three, list(range(5)), workers=2, label="test")


def test_workers_fork_from_a_server_that_preloaded_torch() -> None:
    if "forkserver" not in mp.get_all_start_methods():
        pytest.skip("no fork server on this platform")
    ctx = parallel.context()
    assert ctx.get_start_method() == "forkserver"
    assert "torch" in parallel.PRELOAD and "transformers.modeling_utils" in parallel.PRELOAD
    parallel.warm_up()
    parallel.warm_up()  # idempotent: one server
    # this module imports no transformers: a worker has it only if the server preloaded it
    assert parallel.run_jobs(_preloaded, [1, 2], workers=2, label="test") == [True, True]


def _started_at(seconds: float) -> float:
    import time

    start = time.monotonic()
    time.sleep(seconds)
    return start


def test_costliest_jobs_start_first_and_results_keep_job_order() -> None:
    jobs = [0.3, 0.31, 0.6, 0.3, 0.61]
    starts = parallel.run_jobs(_started_at, jobs, workers=2, label="test", cost=lambda s: s)
    assert len(starts) == len(jobs)
    first_two = sorted(range(len(jobs)), key=lambda i: starts[i])[:2]
    assert sorted(first_two) == [2, 4]  # the two longest jobs, submitted first
