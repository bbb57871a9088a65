"""Where a run's batches execute: this machine's process pool, or a Dask cluster.

Prefect task runs stay threads (cheap to orchestrate); the CPU work of each of their
batches runs in a worker process of one shared pool (both cores busy, no GIL), or, with
`runner="dask"`, on Dask workers through prefect-dask's DaskTaskRunner.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures import wait as wait_for_all
from pathlib import Path

from prefect.futures import PrefectFuture

from tasks.pipeline.batch import BatchResult, KnownFile, Spill, process_files_and_release
from tasks.pipeline.planning import WorkPlan
from tasks.pipeline.run import known_for
from tasks.process.memory import prefer_returning_memory

_POOL: ProcessPoolExecutor | None = None
_POOL_WORKERS = 0
# Batch tasks start together on Prefect's thread pool: without the lock each thread saw no
# pool and made its own (13 worker processes for 13 batches on 2 cores, 4.2 GB).
_POOL_LOCK = threading.Lock()


def compute_pool(workers: int) -> ProcessPoolExecutor:
    """One process pool per flow process. Workers are spawned, not forked: forking a process
    that runs Prefect's threads and event loop can deadlock. Each worker's allocators give
    freed memory back at once (tasks/process/memory.py): the workers set the run's peak."""
    global _POOL, _POOL_WORKERS
    with _POOL_LOCK:
        if _POOL is None or _POOL_WORKERS != workers:
            if _POOL is not None:
                _POOL.shutdown(cancel_futures=True)
            _POOL = ProcessPoolExecutor(
                workers, multiprocessing.get_context("spawn"), initializer=prefer_returning_memory
            )
            _POOL_WORKERS = workers
        return _POOL


def release_pool() -> None:
    """Shut the pool down: idle workers would keep their memory through the global steps."""
    global _POOL, _POOL_WORKERS
    with _POOL_LOCK:
        if _POOL is not None:
            _POOL.shutdown()
            _POOL, _POOL_WORKERS = None, 0


def run_batches(
    seeds_dir: str,
    batches: list[list[str]],
    batch_nos: list[int],
    known: dict[str, KnownFile],
    spill_root: str,
    workers: int,
    on_batch_done: Callable[[int], None] | None = None,
) -> list[BatchResult]:
    """Consecutive batches of files, results in batch order: each in a worker process of the
    pool (`workers` > 1, all of them queued at once), or one after another in this thread.
    If one fails, the queued ones are dropped and the running ones waited for before the
    error goes up: nothing may write to the run's spill after the run has given up.
    `on_batch_done(batch_no)` is called as each batch ends (progress)."""
    seeds = Path(seeds_dir)
    done = on_batch_done or (lambda _no: None)
    work = [
        (files, known_for(known, files), Spill(spill_root, no)) for files, no in zip(batches, batch_nos, strict=True)
    ]
    if workers <= 1:
        results = []
        for args in work:
            results.append(process_files_and_release(seeds, *args))
            done(args[2].batch_no)
        return results
    futures = [compute_pool(workers).submit(process_files_and_release, seeds, *args) for args in work]
    for future, no in zip(futures, batch_nos, strict=True):
        future.add_done_callback(lambda f, no=no: f.cancelled() or f.exception() or done(no))
    try:
        return [f.result() for f in futures]
    except BaseException:
        for f in futures:
            f.cancel()
        wait_for_all(futures)
        raise


def run_batch_tasks(
    submit: Callable[[int], PrefectFuture[list[BatchResult]]], plan: WorkPlan, on_task_done: Callable[[int], None]
) -> list[BatchResult]:
    """Every task of the plan, at most `workers + 1` at once, results in batch order;
    `on_task_done(task_no)` as each task's results arrive (in task order).

    Tasks are submitted as earlier ones finish rather than all at once: a task's batches
    queue in the shared process pool, so with every task submitted the pool would interleave
    them all and every task would finish near the end (progress stuck at 0, every task
    'Running' for the whole run). One task more than workers keeps the pool's queue full
    while a finished task's successor starts. If a task fails, the others in flight are
    waited for before the error goes up: none of them writes after the run has ended."""
    in_flight = plan.workers + 1 if plan.workers > 1 else 1  # one worker: the batches run in task threads
    futures: list[PrefectFuture[list[BatchResult]]] = []
    results: list[BatchResult] = []

    def collect(task_no: int) -> None:
        results.extend(futures[task_no].result())
        on_task_done(task_no)

    try:
        for task_no in range(len(plan.tasks)):
            if task_no >= in_flight:
                collect(task_no - in_flight)
            futures.append(submit(task_no))
        for task_no in range(max(0, len(plan.tasks) - in_flight), len(plan.tasks)):
            collect(task_no)
    except BaseException:
        for future in futures:
            future.wait()
        raise
    finally:
        release_pool()  # idle workers would keep their memory through the global steps
    return results


def dask_task_runner(address: str | None, workers: int):
    """A DaskTaskRunner on an existing cluster (`address`) or on a LocalCluster of `workers`
    single-threaded worker processes (langdetect and the regexes hold the GIL)."""
    from prefect_dask import DaskTaskRunner

    if address:
        return DaskTaskRunner(address=address)
    return DaskTaskRunner(
        cluster_kwargs={"n_workers": workers or os.cpu_count() or 1, "threads_per_worker": 1, "processes": True}
    )


def require_real_server_for_dask() -> None:
    """Dask workers are other processes: without PREFECT_API_URL each would start its own
    temporary Prefect server (3 servers, ~50 s for 10 tasks)."""
    from prefect.settings import PREFECT_API_URL

    if not PREFECT_API_URL.value():
        raise ValueError(
            "runner='dask' needs a Prefect server that the Dask workers can reach: start one "
            "(`make serve`, or `prefect server start`) and set PREFECT_API_URL, e.g. http://127.0.0.1:4200/api"
        )
