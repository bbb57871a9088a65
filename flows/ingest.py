"""The `ingest` flow: seeds folder -> datasets under data/, recorded in Prefect.

The flow body reads like the process it runs; the tasks and helpers it names follow it.
The work itself is Prefect-free: tasks/pipeline/ (planning, the per-batch pipeline, the
global steps) over the steps in tasks/steps/.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.futures import PrefectFuture
from prefect.runtime import deployment as runtime_deployment
from prefect.runtime import flow_run, task_run
from prefect.states import Completed, Failed, State
from prefect.utilities.annotations import quote
from pydantic import Field

from flows import defaults as d
from flows.artifacts import RunProgress, batch_progress, publish_artifacts
from flows.report import load_drawing_in_background, publish_report
from flows.runners import dask_task_runner, require_real_server_for_dask, run_batch_tasks, run_batches
from tasks.errors import RunError, StorageFailed, storage_failed
from tasks.pipeline.batch import BatchResult, KnownFile, count_outcomes
from tasks.pipeline.planning import WorkPlan, check_seeds_dir, plan_work, relative_to_seeds, select_files, validate_glob
from tasks.pipeline.run import finish_run, known_files, known_for
from tasks.pipeline.summary import RunSummary, batch_timeline
from tasks.report import history
from tasks.schema import STATUS_QUARANTINED
from tasks.storage.commit import discard_run, recover
from tasks.storage.location import check_data_dir
from tasks.storage.lock import data_dir_lock
from tasks.storage.spill import spill_root
from tasks.storage.stores import ArrowDir, DataDirLike, LocalDir, open_data_dir


def run_name() -> str:
    """Flow-run names that say what ran, from parameters made safe to show (a glob or file
    name is cut to its plain characters): `on-file-003_cdf2a856273f76b8.txt+2-16:20:07`,
    `sweep-2026-11-22T10:15`, `backfill-2024-_.txt-2026-11-22T10:15:07`."""
    params = flow_run.parameters or {}
    when = (flow_run.scheduled_start_time or datetime.now(UTC)).astimezone(UTC)
    files = params.get("files") or []
    if files:
        more = f"+{len(files) - 1}" if len(files) > 1 else ""
        return f"on-file-{_plain(Path(str(files[0])).name)}{more}-{when:%H:%M:%S}"
    deployment = runtime_deployment.name
    if deployment == "sweep":
        return f"sweep-{when:%Y-%m-%dT%H:%M}"
    if deployment == "backfill":
        return f"backfill-{_plain(str(params.get('glob', d.GLOB)))}-{when:%Y-%m-%dT%H:%M:%S}"
    return f"ingest-{when:%Y-%m-%dT%H:%M:%S}"


def _plain(text: str, limit: int = 48) -> str:
    """Letters, digits, `.`, `-` and `_` only (anything else, `/` and `*` included, as `_`),
    at most `limit` characters: a name that cannot pass for a path or markup."""
    plain = re.sub(r"\.{2,}", ".", re.sub(r"[^A-Za-z0-9._-]+", "_", text)).strip("._") or "_"
    return plain if len(plain) <= limit else plain[: limit - 1] + "~"


def described(name: str, default: object) -> Any:
    """A parameter's default with its words from flows/defaults.py: the UI's run form shows them."""
    return Field(default, description=d.HELP[name])


@flow(name="ingest", flow_run_name=run_name, log_prints=True, validate_parameters=True)
def ingest(
    seeds_dir: str = described("seeds_dir", d.SEEDS_DIR),
    data_dir: str = described("data_dir", d.DATA_DIR),
    glob: str = described("glob", d.GLOB),
    full_refresh: bool = described("full_refresh", False),
    near_duplicate_threshold: Annotated[float, Field(ge=0.0, le=1.0)] = described(
        "near_duplicate_threshold", d.NEAR_DUPLICATE_THRESHOLD
    ),
    since: datetime | None = described("since", None),
    files: list[str] | None = described("files", None),
    batch_bytes: Annotated[int, Field(ge=1, le=1 << 31)] = described("batch_bytes", d.BATCH_BYTES),
    task_bytes: Annotated[int, Field(ge=1, le=1 << 40)] = described("task_bytes", d.TASK_BYTES),
    lock_wait_seconds: Annotated[float, Field(ge=0, le=86400)] = described("lock_wait_seconds", d.LOCK_WAIT_SECONDS),
    workers: Annotated[int, Field(ge=0, le=256)] = described("workers", d.WORKERS),
    runner: Literal["local", "dask"] = described("runner", "local"),
    dask_address: str | None = described("dask_address", None),
) -> dict | State:
    """Ingest every new or changed file of the seeds folder into the Parquet datasets."""
    started, started_at = time.perf_counter(), time.time()
    run_id = str(flow_run.get_id() or uuid.uuid4())
    try:
        seeds, data = check_parameters(seeds_dir, data_dir, glob, files, runner)
        load_drawing_in_background()
        with exclusive(data, lock_wait_seconds):
            recovered = recover_storage(data)
            known = {} if full_refresh else known_files(data)
            plan, n_files = plan_batches(seeds, glob, files, since, batch_bytes, task_bytes, workers, runner)
            submitted_at = time.time()
            results = process_batches(
                seeds, plan, n_files, known, spill_root(data, run_id), runner, dask_address, workers
            )
            timeline = batch_timeline(results, started_at, submitted_at, time.time(), plan.workers)
            summary = deduplicate_and_commit(data.uri, quote(results), run_id, full_refresh, near_duplicate_threshold)
            timeline["committed"] = time.time() - started_at
    except RunError as exc:
        return refused(exc, data_dir, run_id)
    summary.recovered, summary.timeline = recovered, timeline
    publish_artifacts(summary)
    publish_report(summary, data)
    summary.wall_seconds = time.perf_counter() - started
    log_summary(summary)
    return finished(summary)


# ---------------------------------------------------------------------------- the steps


def check_parameters(
    seeds_dir: str, data_dir: str, glob: str, files: list[str] | None, runner: str
) -> tuple[Path, LocalDir | ArrowDir]:
    """Fail at once, naming the parameter, before touching anything; the folders to use."""
    seeds = Path(seeds_dir)
    validate_glob(glob)
    for name in files or []:
        relative_to_seeds(seeds, name)
    check_seeds_dir(seeds)
    check_data_dir(data_dir)
    if runner == "dask":
        require_real_server_for_dask()
    return seeds, open_data_dir(data_dir)


def refused(exc: RunError, data_dir: str, run_id: str) -> State:
    """A run that could not go on, in one line (the log, the run's state message), with
    what it staged removed at once."""
    if isinstance(exc, StorageFailed):
        discard_run(data_dir, run_id)
    get_run_logger().error("%s", exc)
    return Failed(message=str(exc), data=exc)


class _RefusedOnce(logging.Filter):
    """A deployment's run process (`python -m prefect.engine`) asks for the flow's result,
    which re-raises a refused run's error, and Prefect's engine logs it to the run's logs
    again, with a traceback. It is already said in one line and is the run's state message:
    drop the repeat."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], RunError))


logging.getLogger("prefect.flow_runs").addFilter(_RefusedOnce())


def finished(summary: RunSummary) -> State:
    """The run's final state: Completed, its message (and the run's name and tags, which the
    UI's list of runs shows) saying how many files were quarantined, or that no file matched
    the run's selection (a glob that matches nothing is no error, but should not pass unseen)."""
    if not summary.files_seen:
        return Completed(
            message="no file matched the selection (glob, since, files): nothing ingested", data=summary.as_dict()
        )
    if not summary.files_quarantined:
        return Completed(data=summary.as_dict())
    first, reason = next(iter(summary.quarantined.items()))
    n = summary.files_quarantined
    mark_quarantined(n)
    return Completed(message=f"{n} file(s) quarantined, e.g. {first}: {reason}", data=summary.as_dict())


def mark_quarantined(n: int) -> None:
    """Tag the run `quarantined` and say how many in its name."""
    from prefect.client.orchestration import get_client

    run_id = flow_run.get_id()
    if run_id is None:
        return
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(run_id)
        client.update_flow_run(run.id, name=f"{run.name}-{n}-quarantined", tags=sorted({*run.tags, "quarantined"}))


@contextmanager
def exclusive(data: DataDirLike, wait_seconds: float) -> Iterator[None]:
    """Hold the data folder's lock; say in the run's log when waiting for another run."""

    def say_waiting() -> None:
        get_run_logger().warning(
            "another run is writing to %s; waiting up to %.0f s for it to finish", open_data_dir(data).uri, wait_seconds
        )

    with data_dir_lock(data, wait_seconds, on_wait=say_waiting):
        yield


def recover_storage(data: DataDirLike) -> list[str]:
    """Finish a committed run or discard an interrupted one (tasks/storage/commit.py), and
    remove what a report write cut short left behind."""
    recovered = recover(data)
    recovered += [f"removed temporary file {rel}" for rel in history.remove_abandoned_temp_files(data)]
    for line in recovered:
        get_run_logger().warning("storage recovery: %s", line)
    return recovered


def plan_batches(
    seeds: Path,
    glob: str,
    files: list[str] | None,
    since: datetime | None,
    batch_bytes: int,
    task_bytes: int,
    workers: int,
    runner: str,
) -> tuple[WorkPlan, int]:
    """The files this run looks at, in batches, grouped into task runs; and how many files."""
    selected = select_files(seeds, glob, files, since)
    plan = plan_work(selected, batch_bytes, task_bytes, workers, distributed=runner == "dask")
    get_run_logger().info(
        "discovered %d files (%d bytes) in %s -> %d batches in %d tasks",
        len(selected),
        sum(plan.batch_sizes),
        seeds,
        len(plan.batches),
        len(plan.tasks),
    )
    return plan, len(selected)


def process_batches(
    seeds: Path,
    plan: WorkPlan,
    n_files: int,
    known: dict[str, KnownFile],
    spill: Path,
    runner: str,
    dask_address: str | None,
    workers: int,
) -> list[BatchResult]:
    """Every batch of the plan: locally one task run per group of batches (their batches in
    the process pool), or on Dask in a subflow; results in batch order."""
    if runner == "dask":
        distributed = process_batches_on_dask.with_options(task_runner=dask_task_runner(dask_address, workers))
        return distributed(str(seeds), plan.batches, plan.tasks, known, str(spill.absolute()), len(plan.batches))

    # quote(): Prefect would otherwise walk (and copy) every element of these arguments to
    # find upstream futures; each task gets only its own known hashes.
    def submit(task_no: int) -> PrefectFuture[list[BatchResult]]:
        batches = plan.files_of(task_no)
        own = known_for(known, [f for batch in batches for f in batch])
        return process_batch_group.submit(
            str(seeds), quote(batches), plan.tasks[task_no], quote(own), str(spill.absolute()), plan.workers
        )

    progress = RunProgress(plan, n_files)
    try:
        return run_batch_tasks(submit, plan, progress.task_done)
    finally:
        progress.finish()


def log_summary(summary: RunSummary) -> None:
    logger = get_run_logger()
    logger.info(
        "seconds per step (batch steps summed over batches; dedup and write overlap): %s; wall %.1f s",
        ", ".join(f"{step} {seconds:.2f}" for step, seconds in summary.step_seconds.items()),
        summary.wall_seconds,
    )
    logger.info(
        "ingest done: %d files (%d processed, %d unchanged, %d quarantined), %d new articles (%d in the dataset), "
        "%d new near-duplicate links (%d in the dataset), %d spans",
        summary.files_seen,
        summary.files_processed,
        summary.files_unchanged,
        summary.files_quarantined,
        summary.articles_new,
        summary.articles_total,
        summary.near_duplicates_new,
        summary.near_duplicates_total,
        summary.spans,
    )


# ---------------------------------------------------------------------------- task runs
# Tasks take big frames and file lists: hashing them for a cache key would cost more than
# the work, and a re-run must re-read the files anyway, so no task is cached.


def _batch_group_name() -> str:
    """`process-batches-4-7`: which batches (numbered in file order) a task run holds."""
    nos = task_run.parameters.get("batch_nos") or [0]
    return f"process-batches-{nos[0]}-{nos[-1]}"


@task(name="process-batches", task_run_name=_batch_group_name, retries=0, cache_policy=NO_CACHE)
def process_batch_group(
    seeds_dir: str,
    batches: list[list[str]],
    batch_nos: list[int],
    known: dict[str, KnownFile],
    spill_root: str,
    workers: int = 1,
) -> list[BatchResult] | State:
    """Consecutive batches of files, each through load -> segment -> tag -> rows -> enrich
    -> sign -> spill (tasks/pipeline/batch.py)."""
    try:
        results = run_batches(seeds_dir, batches, batch_nos, known, spill_root, workers, batch_progress())
    except OSError as exc:
        return _failed_on_disk(exc, spill_root)
    outcomes = [o for r in results for o in r.outcomes]
    logger = get_run_logger()
    files = count_outcomes(outcomes)
    logger.info(
        "%d batches, %d files: %d processed, %d unchanged, %d quarantined",
        len(batches),
        len(outcomes),
        files.processed,
        files.unchanged,
        files.quarantined,
    )
    for o in (o for o in outcomes if o.status == STATUS_QUARANTINED):
        logger.warning(
            "quarantined%s: %s: %s", " (unchanged since an earlier run)" if o.unchanged else "", o.source_file, o.reason
        )
    return results


@flow(name="ingest-batches", flow_run_name="ingest-batches-{n_batches}", log_prints=True)
def process_batches_on_dask(
    seeds_dir: str,
    batches: list[list[str]],
    tasks: list[list[int]],
    known: dict[str, KnownFile],
    spill_root: str,
    n_batches: int,
) -> list[BatchResult]:
    """The batch task runs on whatever task runner this subflow is given (a DaskTaskRunner),
    each task's batches one after another on its worker; results in batch order. Workers
    spill under `spill_root`, so every worker must see that folder."""
    # No quote() here: under the DaskTaskRunner the task got the quoted argument not unwrapped.
    futures = []
    for batch_nos in tasks:
        group = [batches[b] for b in batch_nos]
        own = known_for(known, [f for batch in group for f in batch])
        futures.append(process_batch_group.submit(seeds_dir, group, batch_nos, own, spill_root, 1))
    return [r for f in futures for r in f.result()]


@task(name="deduplicate-and-commit", cache_policy=NO_CACHE)
def deduplicate_and_commit(
    data_dir: str, results: list[BatchResult], run_id: str, full_refresh: bool, threshold: float
) -> RunSummary | State:
    """Global steps, once per run: deduplicate against data/, stage, then the atomic commit
    (tasks/pipeline/run.py::finish_run)."""
    try:
        summary = finish_run(data_dir, results, run_id, full_refresh, threshold)
    except OSError as exc:
        return _failed_on_disk(exc, data_dir)
    logger = get_run_logger()
    if summary.resigned:
        logger.warning("re-signed %d stored articles missing from the near-duplicate index", summary.resigned)
    logger.info("committed %d partition files, deleted %d", summary.partitions_written, summary.partitions_deleted)
    return summary


def _failed_on_disk(exc: OSError, folder: str) -> State:
    """A full or read-only disk fails the task in one line (the flow then says it once);
    any other OSError is a bug and keeps its traceback."""
    failed = storage_failed(exc, folder)
    if failed is None:
        raise exc
    return Failed(message=str(failed), data=failed)
