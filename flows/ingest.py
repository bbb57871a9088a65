"""The `ingest` flow: seeds folder -> datasets under data/, recorded in Prefect.

Reads top to bottom like the process it runs:

    recover storage  -> discover files -> plan batches (by bytes), grouped into tasks
    -> process each batch (load, segment, tag, enrich, sign)   [one task per group of batches]
    -> deduplicate globally: exact ids, then the near-duplicate search over the index,
       while every dataset it does not decide is staged beside it
    -> stage the near-duplicate links -> commit (manifest last) -> publish artifacts
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures import wait as wait_for_all
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Literal

import polars as pl
import pyarrow as pa
from prefect import flow, get_run_logger, task
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.cache_policies import NO_CACHE
from prefect.futures import PrefectFuture
from prefect.runtime import deployment as runtime_deployment
from prefect.runtime import flow_run, task_run
from prefect.utilities.annotations import quote
from pydantic import Field

from tasks.pipeline.planning import (
    DiscoveredFile,
    UnsafeGlob,
    WorkPlan,
    discover_files,
    plan_work,
    validate_glob,
)
from tasks.storage.lock import DataDirBusy, data_dir_lock
from tasks.steps import dedupe
from tasks.process.memory import prefer_returning_memory, return_freed_memory
from tasks.process.faults import fault_point
from tasks.pipeline.batch import (
    UNCHANGED,
    BatchResult,
    FileOutcome,
    Spill,
    process_files_and_release,
    timed,
)
from tasks.steps.rows import signature_text_expr, signature_texts
from tasks.schema import (
    ARTICLES,
    DUPLICATES,
    FILES,
    KIND_MAIN,
    MINHASH_INDEX,
    OCCURRENCES,
    SEGMENTS,
    SPANS,
    STATUS_PROCESSED,
    STATUS_QUARANTINED,
    C,
    DatasetSpec,
)
from tasks.storage.stores import DataDirLike, open_data_dir
from tasks.storage.commit import CommitPlan, commit, recover, stage_update
from tasks.storage.parquet import read_dataset
from tasks.storage.spill import SpilledRows, spill_files_by_batch, spill_root

DEFAULT_BATCH_BYTES = 8 * 1024 * 1024  # what one worker process holds at once
# Input per Prefect task run. Each task run costs the API server ~45 ms of CPU (state events,
# records, logs): at 100 MB, 13 one-batch tasks were a third of Prefect's cost.
DEFAULT_TASK_BYTES = 32 * 1024 * 1024


_POOL: ProcessPoolExecutor | None = None
_POOL_WORKERS = 0
# Batch tasks start together on Prefect's thread pool: without the lock each thread saw no
# pool and made its own (measured: 13 worker processes for 13 batches on 2 cores, 4.2 GB).
_POOL_LOCK = threading.Lock()


def compute_pool(workers: int) -> ProcessPoolExecutor:
    """One process pool per flow process: Prefect tasks stay threads (cheap to orchestrate),
    the CPU work of each of their batches runs in a worker process (both cores busy,
    no GIL). Workers are spawned, not forked: forking a process that runs Prefect's
    threads and event loop can deadlock. Each worker's allocators give freed memory back
    at once (tasks/heap.py): the workers set the run's peak."""
    global _POOL, _POOL_WORKERS
    with _POOL_LOCK:
        if _POOL is None or _POOL_WORKERS != workers:
            if _POOL is not None:
                _POOL.shutdown(cancel_futures=True)
            _POOL = ProcessPoolExecutor(workers, multiprocessing.get_context("spawn"), initializer=prefer_returning_memory)
            _POOL_WORKERS = workers
        return _POOL


def release_pool() -> None:
    """Shut the pool down: idle workers would keep their memory through the global steps."""
    global _POOL, _POOL_WORKERS
    with _POOL_LOCK:
        if _POOL is not None:
            _POOL.shutdown()
            _POOL, _POOL_WORKERS = None, 0


# Tasks take big frames and file lists: hashing them for a cache key would cost more than
# the work, and a re-run must re-read the files anyway, so no task is cached.
def _batch_task_run_name() -> str:
    """`process-batches-4-7`: which batches (numbered in file order) a task run holds."""
    nos = task_run.parameters.get("batch_nos") or [0]
    return f"process-batches-{nos[0]}-{nos[-1]}"


@task(name="process-batches", task_run_name=_batch_task_run_name, retries=0, cache_policy=NO_CACHE)
def process_batches(
    seeds_dir: str, batches: list[list[str]], batch_nos: list[int], known_sha: dict[str, str], spill_root: str, workers: int = 1
) -> list[BatchResult]:
    """Consecutive batches of files: each in a worker process of the pool (`workers` > 1,
    all the task's batches queued at once), or one after another in this thread."""
    seeds = Path(seeds_dir)
    work = [(files, _known_for(known_sha, files), Spill(spill_root, no)) for files, no in zip(batches, batch_nos, strict=True)]
    if workers > 1:
        pool = compute_pool(workers)
        futures = [pool.submit(process_files_and_release, seeds, *args) for args in work]
        try:
            results = [f.result() for f in futures]
        except BaseException:
            # Drop the queued batches and let the running ones end: nothing may write to
            # the run's spill after the run has given up (and released the data lock).
            for f in futures:
                f.cancel()
            wait_for_all(futures)
            raise
    else:
        results = [process_files_and_release(seeds, *args) for args in work]
    outcomes = [o for r in results for o in r.outcomes]
    get_run_logger().info(
        "%d batches, %d files: %d processed, %d quarantined, %d unchanged",
        len(batches),
        len(outcomes),
        sum(o.status == STATUS_PROCESSED for o in outcomes),
        sum(o.status == STATUS_QUARANTINED for o in outcomes),
        sum(o.status == UNCHANGED for o in outcomes),
    )
    return results


@flow(name="ingest-batches", flow_run_name="ingest-batches-{n_batches}", log_prints=True)
def process_batches_distributed(
    seeds_dir: str, batches: list[list[str]], tasks: list[list[int]], known_sha: dict[str, str], spill_root: str, n_batches: int
) -> list[BatchResult]:
    """The batch tasks on whatever task runner this subflow is given (a DaskTaskRunner for
    `runner="dask"`), each task's batches one after another on its worker; results come back
    in batch order. Workers spill their rows under `spill_root` (inside data/, or a local
    scratch folder when data/ is a remote URI), so every worker must see that folder."""
    # No quote() here: under the DaskTaskRunner the task got the quoted argument not unwrapped
    # (a TypeError in tests/test_dask.py).
    futures = []
    for batch_nos in tasks:
        files = [batches[b] for b in batch_nos]
        futures.append(process_batches.submit(seeds_dir, files, batch_nos, _known_for(known_sha, _flat(files)), spill_root, 1))
    return [r for f in futures for r in f.result()]


def dask_task_runner(address: str | None, workers: int):
    """A DaskTaskRunner on an existing cluster (`address`) or on a LocalCluster of `workers`
    single-threaded worker processes (langdetect and the regexes hold the GIL)."""
    from prefect_dask import DaskTaskRunner

    if address:
        return DaskTaskRunner(address=address)
    return DaskTaskRunner(cluster_kwargs={"n_workers": workers or os.cpu_count() or 1, "threads_per_worker": 1, "processes": True})


def require_real_server_for_dask() -> None:
    """Dask workers are other processes: without PREFECT_API_URL each would start its own
    temporary Prefect server (measured: 3 servers, ~50 s for 10 tasks)."""
    from prefect.settings import PREFECT_API_URL

    if not PREFECT_API_URL.value():
        raise ValueError(
            "runner='dask' needs a Prefect server that the Dask workers can reach: start one "
            "(`make serve`, or `prefect server start`) and set PREFECT_API_URL, e.g. http://127.0.0.1:4200/api"
        )


@dataclass
class RunSummary:
    run_id: str
    files_seen: int = 0
    files_processed: int = 0
    files_quarantined: int = 0
    files_unchanged: int = 0
    occurrences: int = 0
    articles_in_run: int = 0
    articles_new: int = 0
    articles_already_seen: int = 0
    articles_total: int = 0
    near_duplicates: int = 0
    spans: int = 0
    spans_by_lang: dict[str, int] = field(default_factory=dict)
    quarantined: dict[str, str] = field(default_factory=dict)
    recovered: list[str] = field(default_factory=list)
    # Wall time of each step, summed over batches; the global steps dedup and write overlap
    # (deduplicate_stage_and_commit), so their sum can be more than global_steps_seconds.
    step_seconds: dict[str, float] = field(default_factory=dict)
    # Wall and CPU time (every thread of the flow process) of the global steps, from the
    # batches' results to the commit.
    global_steps_seconds: float = 0.0
    global_steps_cpu_seconds: float = 0.0
    wall_seconds: float = 0.0  # the whole flow, Prefect included
    # Where the wall time went, in seconds from the flow's start (see `batch_timeline`).
    timeline: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_")}


def _manifest_rows(outcomes: list[FileOutcome], run_id: str, now: datetime) -> pl.DataFrame:
    """One manifest row per file this run looked at and did not skip."""
    records = [
        {
            C.source_file: o.source_file,
            C.source_sha256: o.sha256,
            C.n_bytes: o.n_bytes,
            C.encoding: o.encoding,
            C.status: o.status,
            C.reason: o.reason,
            C.run_id: run_id,
            C.processed_at: now,
        }
        for o in outcomes
        if o.status != UNCHANGED
    ]
    return pl.from_arrow(pa.Table.from_pylist(records, schema=FILES.schema))  # type: ignore[return-value]


_TEXT = "_text"  # internal column: an article's title and body, see signature_text_expr


@dataclass
class RunRows:
    """This run's rows, as the batches spilled them under `root`: read lazily and one
    partition at a time. `winners` holds one (article_id, batch) per article of the run:
    a `main` occurrence wins over `related` (it carries the date), then batch order."""

    root: Path
    winners: pl.DataFrame
    n_occurrences: int = 0
    spans_by_lang: dict[str, int] = field(default_factory=dict)

    @classmethod
    def gather(cls, root: Path, results: list[BatchResult]) -> RunRows:
        """The run's rows from what its batches spilled under `root` and reported back."""
        keys = [r.article_keys for r in results if r.article_keys is not None]
        if not keys:  # nothing processed: no rows (and keys of the right types)
            keys = [SpilledRows(root, ARTICLES).scan().select(C.article_id, C.kind, C.batch, C.row).collect()]
        winners = (
            pl.concat(keys)
            .sort(pl.col(C.kind) != KIND_MAIN, C.batch, C.row)
            .unique(C.article_id, keep="first", maintain_order=True)
            .select(C.article_id, C.batch)
        )
        by_lang: dict[str, int] = {}
        for r in results:
            for lang, n in r.spans_by_lang.items():
                by_lang[lang] = by_lang.get(lang, 0) + n
        return cls(root, winners, sum(r.n_occurrences for r in results), dict(sorted(by_lang.items())))

    def rows(self, spec: DatasetSpec) -> SpilledRows:
        return SpilledRows(self.root, spec)

    def spill_bytes(self) -> int:
        """Bytes of every file the batches spilled (Arrow IPC): the run's size as the global
        steps see it."""
        return sum(f.stat().st_size for f in self.root.rglob("*") if f.is_file())

    def articles(self, keep: pl.DataFrame | None = None) -> SpilledRows:
        """Winning article rows (of `keep`, a subset of `winners`, when given)."""
        chosen = (self.winners if keep is None else keep).lazy()
        return SpilledRows(self.root, ARTICLES, lambda f: f.join(chosen, on=[C.article_id, C.batch], how="semi"))

    def signatures(self, keep: pl.DataFrame | None = None) -> pl.DataFrame:
        chosen = (self.winners if keep is None else keep).lazy()
        return (
            SpilledRows(self.root, MINHASH_INDEX).scan()
            .join(chosen, on=[C.article_id, C.batch], how="semi")
            .select([f.name for f in MINHASH_INDEX.schema])
            .collect()
        )

    def article_texts(self, ids: list[str]) -> pl.DataFrame:
        """article_id, _TEXT (title and body, not normalized) of the winners among `ids`, read
        one batch's file at a time: only the wanted texts are held, copied out of the read
        buffers. (A streaming scan of every file at once held ~570 MB at 1 GB of input, and
        string views of the kept rows pin the buffers they point into.)"""
        wanted = self.winners.filter(pl.col(C.article_id).is_in(ids))
        files = spill_files_by_batch(self.root, ARTICLES.name)
        pieces = [pl.DataFrame(schema={C.article_id: pl.String, _TEXT: pl.String})]
        for batch, ids_of_batch in wanted.group_by(C.batch, maintain_order=True).agg(C.article_id).iter_rows():
            pieces.append(
                pl.scan_ipc(files[batch], hive_partitioning=False, glob=False)  # a path, not a pattern
                .filter(pl.col(C.article_id).is_in(ids_of_batch))
                .select(C.article_id, signature_text_expr().alias(_TEXT))
                .collect()
            )
        return pl.concat(pieces)

    def article_ids(self) -> set[str]:
        """Every article this run saw (each has an occurrence, and each occurrence an article)."""
        return set(self.winners.get_column(C.article_id).to_list())


def _texts_loader(data_dir: DataDirLike, rows: RunRows):
    """Near-dup verification needs the text of candidate articles only: from this run's
    spilled rows when new, otherwise from the articles dataset."""

    def load(ids: list[str]) -> dict[str, str]:
        fresh = rows.article_texts(ids)
        texts = (dedupe.normalize_text(t) for t in fresh.get_column(_TEXT))
        found = dict(zip(fresh.get_column(C.article_id).to_list(), texts, strict=True))
        missing = [i for i in ids if i not in found]
        if missing:
            old = read_dataset(data_dir, ARTICLES, [C.article_id, C.title, C.body]).filter(pl.col(C.article_id).is_in(missing))
            found.update(zip(old.get_column(C.article_id).to_list(), signature_texts(old), strict=True))
        return found

    return load


@dataclass
class ExactMatch:
    """Exact dedup against data/: which of the run's articles are new, which stored ones lost
    every occurrence, and the index that near-duplicate search runs over."""

    new_articles: SpilledRows  # this run's articles that data/ does not hold yet
    n_new_articles: int
    new_signatures: pl.DataFrame
    orphaned: list[str]  # articles whose every occurrence was replaced
    articles_total: int
    index: pl.DataFrame  # every live article's signature (~0.5 KB each): held by the near-duplicate step only


def resign_missing(data: DataDirLike, index: pl.DataFrame, article_ids: set[str]) -> pl.DataFrame:
    """Signatures for stored articles the index lacks (a new signature scheme, a lost index
    folder): near-duplicate search must see every article ever ingested."""
    missing = article_ids - set(index.get_column(C.article_id).to_list())
    if not missing:
        return pl.from_arrow(MINHASH_INDEX.schema.empty_table())  # type: ignore[return-value]
    stored = read_dataset(data, ARTICLES, [C.article_id, C.published_at, C.title, C.body])
    stored = stored.filter(pl.col(C.article_id).is_in(list(missing))).sort(C.article_id)
    get_run_logger().warning("re-signing %d stored articles missing from %s", stored.height, MINHASH_INDEX.name)
    signed = dedupe.signatures_frame(stored[C.article_id].to_list(), stored[C.published_at], signature_texts(stored))
    return pl.from_arrow(signed.to_arrow().cast(MINHASH_INDEX.schema))  # type: ignore[return-value]


def match_exact(data: DataDirLike, rows: RunRows, replaced_files: list[str], full_refresh: bool) -> ExactMatch:
    """Exact dedup against everything ingested before (article ids are content hashes)."""
    if full_refresh:
        kept_ids: set[str] = set()
        existing_ids: set[str] = set()
        old_index = pl.from_arrow(MINHASH_INDEX.schema.empty_table())
    else:
        occ = read_dataset(data, OCCURRENCES, [C.article_id, C.source_file])
        kept_ids = set(occ.filter(~pl.col(C.source_file).is_in(replaced_files)).get_column(C.article_id).to_list())
        existing_ids = set(read_dataset(data, ARTICLES, [C.article_id]).get_column(C.article_id).to_list())
        old_index = read_dataset(data, MINHASH_INDEX)
    live_ids = kept_ids | rows.article_ids()
    orphaned = sorted(existing_ids - live_ids)
    new_ids = rows.winners.filter(~pl.col(C.article_id).is_in(list(existing_ids)))
    new_signatures = rows.signatures(new_ids)
    resigned = resign_missing(data, old_index, existing_ids - set(orphaned))
    if resigned.height:
        new_signatures = pl.concat([new_signatures, resigned])
    # The index persists under data/_index: a file arriving next month meets everything before it.
    # (every signature is 0.5 KB: at 1 GB of input the index is ~165 MB, so no needless copies)
    index = pl.concat([old_index.filter(~pl.col(C.article_id).is_in(orphaned)), new_signatures]) if old_index.height else new_signatures
    total = len(existing_ids - set(orphaned)) + new_ids.height
    return ExactMatch(rows.articles(new_ids), new_ids.height, new_signatures, orphaned, total, index)


# The near-duplicate search is mostly Python, staging mostly pyarrow and polars with the GIL
# released: side by side, the second core works through what was idle time (100 MB of input:
# global steps 4.8 -> 3.8 s; 1 GB: 42 -> 30 s). But each holds hundreds of MB at 1 GB (the
# index and the candidates' shingles; the largest articles partition), and side by side the
# flow's peak rose from 1.09 to 1.52 GB, the run's to 1.86 GB: over the 1.5 GB bound. So they
# overlap only while the run's spill (Arrow IPC on disk, ~1.05 MB a MB of input) is small.
OVERLAP_MAX_SPILL_BYTES = 256 * 1024 * 1024


def stage_run_rows(
    data: DataDirLike,
    run_id: str,
    rows: RunRows,
    exact: ExactMatch,
    manifest: pl.DataFrame,
    replaced_files: list[str],
    full_refresh: bool,
    stop: threading.Event,
) -> CommitPlan:
    """Stage every changed partition of every dataset but `duplicates` (nothing here waits
    for the near-duplicate search, so it runs beside it); nothing is committed. Stops
    before the next dataset once `stop` is set (the run has failed)."""
    plan = CommitPlan(run_id)
    gone = pl.col(C.article_id).is_in(exact.orphaned)
    replaced = pl.col(C.source_file).is_in(replaced_files)
    updates = [
        (MINHASH_INDEX, exact.new_signatures, gone),
        (ARTICLES, exact.new_articles, gone),
        (OCCURRENCES, rows.rows(OCCURRENCES), replaced),
        (SEGMENTS, rows.rows(SEGMENTS), replaced),
        (SPANS, rows.rows(SPANS), replaced),
        (FILES, manifest, replaced),
    ]
    exact.new_signatures = exact.new_signatures.clear()  # held by `updates` only: dropped once staged
    while updates and not stop.is_set():
        spec, new_rows, delete_where = updates.pop(0)
        fault_point(f"stage:{spec.name}")
        plan.extend(stage_update(data, run_id, spec, new_rows, delete_where=delete_where, replace_all=full_refresh))
        del new_rows  # a dataset's rows, once staged
        return_freed_memory()
    return plan


def deduplicate_stage_and_commit(
    data: DataDirLike,
    run_id: str,
    rows: RunRows,
    manifest: pl.DataFrame,
    replaced_files: list[str],
    full_refresh: bool,
    threshold: float,
    step_seconds: dict[str, float],
) -> tuple[ExactMatch, pl.DataFrame, CommitPlan]:
    """The global steps: exact dedup; then the near-duplicate search (on this thread) and the
    staging of every dataset it does not decide (on another) -- at once when the run's spill
    is at most OVERLAP_MAX_SPILL_BYTES, else one after the other. Then the `duplicates`
    dataset, and the commit (manifest last).

    If the search fails, staging stops after the dataset it is on, the error goes up once
    the staging thread has ended (a staging error too is noted on it), and nothing is
    committed. `step_seconds` gets each step's own wall time (dedup, write): when they
    overlap, their sum is more than the wall time of this call."""
    with timed(step_seconds, "dedup"):
        exact = match_exact(data, rows, replaced_files, full_refresh)
    overlap = rows.spill_bytes() <= OVERLAP_MAX_SPILL_BYTES
    write_seconds: dict[str, float] = {}
    stop = threading.Event()

    def stage_beside_search() -> CommitPlan:
        with timed(write_seconds, "write"):
            return stage_run_rows(data, run_id, rows, exact, manifest, replaced_files, full_refresh, stop)

    with ThreadPoolExecutor(1, thread_name_prefix="newsflow-stage") as stager:
        staged = stager.submit(stage_beside_search) if overlap else None
        try:
            with timed(step_seconds, "dedup"):
                duplicates = dedupe.find_near_duplicates(exact.index, _texts_loader(data, rows), threshold=threshold)
        except BaseException as exc:
            stop.set()
            exact.index = exact.index.clear()  # not held while the staging thread ends
            if staged is not None and (staging_error := staged.exception()) is not None:  # waits for the staging thread
                exc.add_note(f"staging, running beside the search, failed too: {staging_error!r}")
            raise
        finally:
            exact.index = exact.index.clear()  # the run's largest frame, not needed past the search
            return_freed_memory()
        try:
            plan = (staged if staged is not None else stager.submit(stage_beside_search)).result()  # a failed stage raises here
        except BaseException:
            stop.set()  # interrupted (Ctrl-C): stage no further dataset before the `with` joins the thread
            raise
    with timed(write_seconds, "write"):
        fault_point(f"stage:{DUPLICATES.name}")
        plan.extend(stage_update(data, run_id, DUPLICATES, duplicates, replace_all=True))  # recomputed whole from the index every run
        fault_point("commit")
        commit(data, plan)
    step_seconds["write"] = step_seconds.get("write", 0.0) + write_seconds["write"]
    return exact, duplicates, plan


@task(name="deduplicate-and-commit", cache_policy=NO_CACHE)
def deduplicate_and_commit(
    data_dir: str,
    results: list[BatchResult],
    run_id: str,
    full_refresh: bool,
    near_duplicate_threshold: float,
) -> RunSummary:
    """Global steps, once per run: deduplicate against data/, stage, then the atomic commit."""
    started, started_cpu = time.perf_counter(), time.process_time()
    data = open_data_dir(data_dir)
    summary = RunSummary(run_id)
    for r in results:
        for step, seconds in r.timings.items():
            summary.step_seconds[step] = summary.step_seconds.get(step, 0.0) + seconds
    outcomes = [o for r in results for o in r.outcomes]
    replaced_files = sorted(o.source_file for o in outcomes if o.status != UNCHANGED)
    rows = RunRows.gather(spill_root(data, run_id), results)
    manifest = _manifest_rows(outcomes, run_id, datetime.now(UTC))
    exact, duplicates, plan = deduplicate_stage_and_commit(
        data, run_id, rows, manifest, replaced_files, full_refresh, near_duplicate_threshold, summary.step_seconds
    )
    summary.global_steps_seconds = time.perf_counter() - started
    summary.global_steps_cpu_seconds = time.process_time() - started_cpu
    get_run_logger().info("committed %d partition files, deleted %d", len(plan.writes), len(plan.deletes))

    summary.occurrences = rows.n_occurrences
    summary.spans_by_lang = rows.spans_by_lang
    summary.files_seen = len(outcomes)
    summary.files_processed = sum(o.status == STATUS_PROCESSED for o in outcomes)
    summary.files_quarantined = sum(o.status == STATUS_QUARANTINED for o in outcomes)
    summary.files_unchanged = sum(o.status == UNCHANGED for o in outcomes)
    summary.quarantined = {o.source_file: o.reason or "" for o in outcomes if o.status == STATUS_QUARANTINED}
    summary.articles_in_run = rows.winners.height
    summary.articles_new = exact.n_new_articles
    summary.articles_already_seen = rows.winners.height - exact.n_new_articles
    summary.articles_total = exact.articles_total
    summary.near_duplicates = duplicates.height
    summary.spans = sum(summary.spans_by_lang.values())
    summary._outcomes = outcomes  # type: ignore[attr-defined]  # for the artifact, not serialized
    return summary


def _summary_markdown(s: RunSummary) -> str:
    lines = [
        f"# newsflow ingest — run `{s.run_id}`",
        "",
        "| measure | value |",
        "|---|---|",
        f"| files seen | {s.files_seen} |",
        f"| processed | {s.files_processed} |",
        f"| unchanged (skipped) | {s.files_unchanged} |",
        f"| quarantined | {s.files_quarantined} |",
        f"| article occurrences | {s.occurrences} |",
        f"| unique articles in this run | {s.articles_in_run} |",
        f"| new articles | {s.articles_new} |",
        f"| already seen before | {s.articles_already_seen} |",
        f"| articles in the dataset | {s.articles_total} |",
        f"| near-duplicate links | {s.near_duplicates} |",
        f"| untranslated spans | {s.spans} |",
    ]
    if "worker_busy" in s.timeline:
        t = s.timeline
        lines += [
            "",
            "## Where the time went (seconds from the flow's start)",
            "",
            (
                f"Batches handed out at {t['batches_submitted']:.1f}; the first began at {t['first_batch_started']:.1f} "
                f"(worker start-up), the last ended at {t['last_batch_ended']:.1f}; workers busy {t['worker_busy']:.1f} s, "
                f"idle {t['worker_idle']:.1f} s between; committed at {t['committed']:.1f}."
            ),
        ]
    if s.spans_by_lang:
        lines += ["", "## Spans by language", "", "| lang | spans |", "|---|---|"]
        lines += [f"| {lang} | {n} |" for lang, n in s.spans_by_lang.items()]
    if s.quarantined:
        lines += ["", "## Quarantined files", "", "| file | reason |", "|---|---|"]
        lines += [f"| `{f}` | {r} |" for f, r in itertools.islice(s.quarantined.items(), ARTIFACT_FILE_ROWS)]
        if len(s.quarantined) > ARTIFACT_FILE_ROWS:
            lines += ["", f"… and {len(s.quarantined) - ARTIFACT_FILE_ROWS} more: every file's status and reason is in `data/files/`."]
    if s.recovered:
        lines += ["", "## Recovered at start", ""] + [f"- {r}" for r in s.recovered]
    return "\n".join(lines)


# The UI loads and renders a table artifact whole: one row per file of a 79,308-file backfill
# was a 10 MB artifact. The complete per-file record is the manifest dataset (data/files/).
ARTIFACT_FILE_ROWS = 1_000


def file_table_rows(outcomes: list[FileOutcome], limit: int = ARTIFACT_FILE_ROWS) -> list[dict]:
    """Rows of the `ingest-files` artifact: quarantined files first (they need a look), then
    the others by name; at most `limit`."""
    ranked = sorted(outcomes, key=lambda o: (o.status != STATUS_QUARANTINED, o.source_file))
    return [
        {
            "file": o.source_file,
            "status": o.status,
            "articles": o.n_articles,
            "bytes": o.n_bytes,
            "encoding": o.encoding or "",
            "reason": o.reason or "",
        }
        for o in ranked[:limit]
    ]


def publish_artifacts(summary: RunSummary) -> None:
    """The run's table and summary, attached to the flow run (called in the flow: a task run
    of its own cost more than the two API calls)."""
    outcomes: list[FileOutcome] = getattr(summary, "_outcomes", [])
    rows = file_table_rows(outcomes)
    more = f" ({len(rows)} of {len(outcomes)}, quarantined first; every file is in data/files/)" if len(rows) < len(outcomes) else ""
    create_table_artifact(
        key="ingest-files",
        table=rows,
        description=f"The input files of this run and what happened to each{more}",
    )
    create_markdown_artifact(key="ingest-summary", markdown=_summary_markdown(summary), description="newsflow run summary")


def _run_id() -> str:
    return str(flow_run.get_id() or uuid.uuid4())


def flow_run_label() -> str:
    """Flow-run names that say what ran: `ingest-on-file-003_cdf2…`, `sweep-2026-11-22T10:15`."""
    params = flow_run.parameters or {}
    when = (flow_run.scheduled_start_time or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M")
    deployment = runtime_deployment.name
    files = params.get("files") or []
    if files:
        first = Path(str(files[0])).name[:12]
        more = f"+{len(files) - 1}" if len(files) > 1 else ""
        return f"ingest-on-file-{first}…{more}"
    if deployment == "sweep":
        return f"sweep-{when}"
    if deployment == "backfill":
        return f"backfill-{params.get('glob', '')}-{when}"
    return f"ingest-{when}"


def select_files(
    seeds: Path, glob: str, files: list[str] | None, since: datetime | None
) -> list[DiscoveredFile]:
    """The files a run looks at: the glob's matches, narrowed to `files` and to `since`."""
    found = discover_files(seeds, glob)
    if files is not None:
        wanted = set()
        for name in files:
            rel = _relative_to_seeds(seeds, name)
            wanted.add(rel)
        found = [f for f in found if f.source_file in wanted]
    if since is not None:
        cutoff = since.timestamp()
        found = [f for f in found if _mtime(seeds / f.source_file) >= cutoff]
    return found


def _relative_to_seeds(seeds: Path, name: str) -> str:
    """A file named by an event or a person, as a path relative to the seeds folder —
    refusing anything that resolves outside it."""
    path = Path(name)
    if path.is_absolute():
        try:
            path = path.resolve(strict=False).relative_to(seeds.resolve())
        except ValueError:
            raise UnsafeGlob(f"file {name!r} is outside the seeds folder {seeds}; refused") from None
    if any(part == ".." for part in path.parts):
        raise UnsafeGlob(f"file {name!r} climbs out of the seeds folder with '..'; refused")
    return path.as_posix()


def _mtime(path: Path) -> float:
    try:
        return path.lstat().st_mtime
    except FileNotFoundError:
        return 0.0


def run_batch_tasks(submit: Callable[[int], PrefectFuture[list[BatchResult]]], plan: WorkPlan) -> list[BatchResult]:
    """Every task of the plan, at most `workers + 1` at once, results in batch order, while
    a progress artifact says how far the run is (by bytes of input done).

    Tasks are submitted as earlier ones finish rather than all at once: a task's batches
    queue in the shared process pool, so with every task submitted the pool would interleave
    them all and every task would finish near the end (a progress bar stuck at 0, every task
    'Running' for the whole run). One task more than workers keeps the pool's queue full
    while a finished task's successor starts. If a task fails, the others in flight are
    waited for before the error goes up: none of them writes after the run has ended."""
    progress = create_progress_artifact(0.0, key="ingest-progress", description="Share of this run's input bytes processed")
    total = sum(plan.batch_sizes)
    in_flight = plan.workers + 1 if plan.workers > 1 else 1  # one worker: the batches run in task threads
    futures: list[PrefectFuture[list[BatchResult]]] = []
    results: list[BatchResult] = []
    done_bytes = 0

    def collect(task_no: int) -> None:
        nonlocal done_bytes
        results.extend(futures[task_no].result())
        done_bytes += plan.bytes_of(task_no)
        update_progress_artifact(progress, 100.0 * done_bytes / total if total else 100.0)

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
    if not plan.tasks:
        update_progress_artifact(progress, 100.0)
    return results


def batch_timeline(results: list[BatchResult], started: float, submitted: float, collected: float, workers: int) -> dict[str, float]:
    """The batch phase in seconds from the flow's start (`time.time()` stamps): when the
    batches were handed out, when the first began and the last ended in a worker, when the
    flow had them all, and how long the workers sat idle between the first start and the
    last end (imbalance: one worker still busy while another has nothing left)."""
    ran = [r for r in results if r.ended_at]
    out = {"batches_submitted": submitted - started, "batches_collected": collected - started}
    if ran:
        first, last = min(r.started_at for r in ran), max(r.ended_at for r in ran)
        busy = sum(r.ended_at - r.started_at for r in ran)
        out |= {
            "first_batch_started": first - started,
            "last_batch_ended": last - started,
            "worker_busy": busy,
            "worker_idle": max(workers * (last - first) - busy, 0.0),
        }
    return out


def _flat(batches: list[list[str]]) -> list[str]:
    return [f for batch in batches for f in batch]


@contextmanager
def _exclusive(data: DataDirLike, wait_seconds: float) -> Iterator[None]:
    """Hold the data folder's lock; say in the run's log when waiting for another run."""
    with ExitStack() as stack:
        try:
            stack.enter_context(data_dir_lock(data, wait_seconds=0))
        except DataDirBusy:
            if not wait_seconds:
                raise
            get_run_logger().warning("another run is writing to %s; waiting up to %.0f s for it to finish", open_data_dir(data).uri, wait_seconds)
            stack.enter_context(data_dir_lock(data, wait_seconds=wait_seconds))
        yield


@flow(name="ingest", flow_run_name=flow_run_label, log_prints=True, validate_parameters=True)
def ingest(
    seeds_dir: str = "seeds",
    data_dir: str = "data",
    glob: str = "**/*.txt",
    full_refresh: bool = False,
    near_duplicate_threshold: Annotated[float, Field(ge=0.0, le=1.0)] = 0.8,
    since: datetime | None = None,
    files: list[str] | None = None,
    batch_bytes: Annotated[int, Field(ge=1, le=1 << 31)] = DEFAULT_BATCH_BYTES,
    task_bytes: Annotated[int, Field(ge=1, le=1 << 40)] = DEFAULT_TASK_BYTES,
    lock_wait_seconds: Annotated[float, Field(ge=0, le=86400)] = 0.0,
    workers: Annotated[int, Field(ge=0, le=256)] = 0,
    runner: Literal["local", "dask"] = "local",
    dask_address: str | None = None,
) -> dict:
    """Ingest every new or changed file of the seeds folder into the Parquet datasets.

    Args:
        seeds_dir: Folder of input .txt pages.
        data_dir: Folder of the Parquet datasets (articles, occurrences, segments, spans, duplicates, files): a path or a filesystem URI such as `s3://bucket/newsflow` or `file:///srv/data`.
        glob: Which files, relative to the seeds folder, e.g. `2024-*/*.txt`. Absolute paths and `..` are refused.
        full_refresh: Rebuild every dataset from the files present now instead of adding new and changed files.
        near_duplicate_threshold: Jaccard similarity of word 5-shingles (0 to 1) at or above which two articles are near-duplicates.
        since: Only files modified at or after this time.
        files: Only these files (paths relative to the seeds folder); the folder watcher sets this.
        batch_bytes: Most bytes of input a worker process holds at once (bounds memory); batches are cut equal, as many as a multiple of the workers, so they end together.
        task_bytes: Bytes of input per Prefect task run (its batches run in the process pool together).
        lock_wait_seconds: How long to wait for another run to release the data folder before giving up.
        workers: Processes for batch work: 0 = one per core, 1 = no process pool (with runner=dask: LocalCluster workers).
        runner: Where batches run: `local` (this machine's cores) or `dask` (a Dask cluster through prefect-dask).
        dask_address: Scheduler address of an existing Dask cluster, e.g. tcp://host:8786; empty = a LocalCluster.
    """
    started, started_at = time.perf_counter(), time.time()
    logger = get_run_logger()
    seeds, data = Path(seeds_dir), open_data_dir(data_dir)
    validate_glob(glob)  # fail at once, naming the parameter, before touching anything
    if runner == "dask":
        require_real_server_for_dask()
    run_id = _run_id()
    with _exclusive(data, lock_wait_seconds):
        recovered = recover(data)
        for line in recovered:
            logger.warning("storage recovery: %s", line)
        known = {} if full_refresh else _known_hashes(data)
        selected = select_files(seeds, glob, files, since)
        plan = plan_work(selected, batch_bytes, task_bytes, workers, distributed=runner == "dask")
        logger.info(
            "discovered %d files (%d bytes) in %s -> %d batches in %d tasks",
            len(selected), sum(plan.batch_sizes), seeds, len(plan.batches), len(plan.tasks),
        )
        spill = str(spill_root(data, run_id).absolute())
        submitted_at = time.time()
        if runner == "dask":
            distributed = process_batches_distributed.with_options(task_runner=dask_task_runner(dask_address, workers))
            results = distributed(str(seeds), plan.batches, plan.tasks, known, spill, len(plan.batches))
        else:
            # quote(): Prefect would otherwise walk (and copy) every element of these
            # arguments to find upstream futures; each task gets only its own known hashes.
            def submit(task_no: int) -> PrefectFuture[list[BatchResult]]:
                files = plan.files_of(task_no)
                return process_batches.submit(str(seeds), quote(files), plan.tasks[task_no], quote(_known_for(known, _flat(files))), spill, plan.workers)

            try:
                results = run_batch_tasks(submit, plan)
            finally:
                release_pool()  # idle workers would keep their memory through the global steps
        timeline = batch_timeline(results, started_at, submitted_at, time.time(), plan.workers)
        summary = deduplicate_and_commit(data.uri, quote(results), run_id, full_refresh, near_duplicate_threshold)
        timeline["committed"] = time.time() - started_at
    summary.recovered = recovered
    summary.timeline = timeline
    publish_artifacts(summary)
    summary.wall_seconds = time.perf_counter() - started
    logger.info(
        "seconds per step (batch steps summed over batches; dedup and write overlap): %s; wall %.1f s",
        ", ".join(f"{step} {seconds:.2f}" for step, seconds in summary.step_seconds.items()),
        summary.wall_seconds,
    )
    logger.info(
        "ingest done: %d files (%d processed, %d unchanged, %d quarantined), %d new articles, %d near-duplicates, %d spans",
        summary.files_seen,
        summary.files_processed,
        summary.files_unchanged,
        summary.files_quarantined,
        summary.articles_new,
        summary.near_duplicates,
        summary.spans,
    )
    return summary.as_dict()


def _known_for(known: dict[str, str], batch: list[str]) -> dict[str, str]:
    """The known hashes of one batch's files (not the whole manifest, once per batch)."""
    return {f: known[f] for f in batch if f in known}


def _known_hashes(data: DataDirLike) -> dict[str, str]:
    """sha256 of every file already in the manifest (processed or quarantined)."""
    manifest = read_dataset(data, FILES, [C.source_file, C.source_sha256])
    return {f: s for f, s in manifest.iter_rows() if s is not None}
