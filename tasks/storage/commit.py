"""The commit protocol: a run's changed partitions staged, then committed atomically.

    data/_staging/<run_id>/...            new partition files of a run in progress
    data/_staging/<run_id>/COMMIT.json    the commit record (written last, atomically)

A run writes every changed partition under `_staging/<run_id>/`, then writes
COMMIT.json (temp file + fsync + rename: that rename is the commit point), then moves
each staged file into place with os.replace (atomic per file; the `files` manifest
goes last) and deletes the staging folder. `recover()` runs before every run: a
staging folder without COMMIT.json is an interrupted run and is deleted (roll back);
one with COMMIT.json is finished (roll forward). Readers therefore never see a
partial Parquet file, and a crash at any point leaves either the old or the new data.

The data dir may also be a filesystem URI (`s3://bucket/newsflow`; tasks/storage/stores.py):
the same steps in the same order, each file written in one upload (whole or absent) and
moved by copy + delete. All I/O below goes through that store, with paths relative to data/.
"""

from __future__ import annotations

import json
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import polars as pl
import pyarrow as pa

from tasks.process.faults import fault_point
from tasks.schema import FILES, DatasetSpec, empty_frame
from tasks.storage.parquet import (
    PART_FILE,
    count_rows,
    partition_dir,
    read_dataset,
    read_partition,
    with_partition_columns,
    write_parquet_atomic,
)
from tasks.storage.stores import STAGING_DIR, ArrowDir, DataDirLike, LocalDir, open_data_dir

COMMIT_FILE = "COMMIT.json"
# Staging: partitions encoded at once, and the bytes of rows being encoded past which the
# next partition is not read yet. Staging every dataset of 100 MB of input takes 5.9-6.1 s
# so, against 6.7 s one partition at a time (articles wait on reading their spill).
STAGE_WRITERS = 2
STAGE_BYTES_IN_FLIGHT = 256 << 20


@dataclass
class CommitPlan:
    """What a run changes: staged files to move into place and partition files to delete."""

    run_id: str
    writes: list[str] = field(default_factory=list)  # paths relative to data_dir
    deletes: list[str] = field(default_factory=list)

    def extend(self, other: CommitPlan) -> None:
        self.writes += other.writes
        self.deletes += other.deletes


def staging_root(data_dir: Path, run_id: str) -> Path:
    """The staging folder of a run in a local data dir (tests and tools)."""
    return data_dir / STAGING_DIR / run_id


def _staging_rel(run_id: str) -> str:
    return f"{STAGING_DIR}/{run_id}"


class NewRows(Protocol):
    """A dataset's new rows, readable one partition at a time (bounded memory)."""

    def partitions(self) -> set[str]:
        """Partition dirs (relative to data/, e.g. `segments/source_bucket=07`) with rows."""
        ...

    def read(self, rel_dir: str) -> pl.DataFrame:
        """The rows of one partition, with the spec's file columns."""
        ...


class FrameRows:
    """New rows already in memory (small datasets: files, duplicates, the index)."""

    def __init__(self, spec: DatasetSpec, frame: pl.DataFrame) -> None:
        self._columns = [f.name for f in spec.file_schema]
        frame = with_partition_columns(spec, frame)
        keys = list(spec.partition_by)
        if keys:
            self._parts = {
                partition_dir(spec, values): part
                for values, part in frame.partition_by(keys, as_dict=True, maintain_order=True).items()
            }
        else:
            self._parts = {spec.name: frame} if frame.height else {}

    def partitions(self) -> set[str]:
        return set(self._parts)

    def read(self, rel_dir: str) -> pl.DataFrame:
        return self._parts[rel_dir].select(self._columns)


def stage_update(
    data_dir: DataDirLike,
    run_id: str,
    spec: DatasetSpec,
    new_rows: pl.DataFrame | NewRows,
    delete_where: pl.Expr | None = None,
    replace_all: bool = False,
) -> CommitPlan:
    """Stage the partitions of `spec` that change when `new_rows` are added and the
    existing rows matching `delete_where` are removed (`replace_all`: the dataset becomes
    exactly `new_rows`). Only touched partitions are rewritten, each as one file; they are
    read one at a time and encoded up to STAGE_WRITERS at a time."""
    plan = CommitPlan(run_id)
    data_dir = open_data_dir(data_dir)
    if isinstance(new_rows, pl.DataFrame):
        new_rows = FrameRows(spec, new_rows)
    keys = list(spec.partition_by)
    new_parts = new_rows.partitions()

    existing_parts = {rel.rsplit("/", 1)[0] for rel in data_dir.list_files(spec.name, PART_FILE)}

    if replace_all:
        touched = new_parts | existing_parts
    else:
        touched = set(new_parts)
        if delete_where is not None and existing_parts:
            # only the predicate's columns and the partition keys: not every row's text
            needed = sorted(set(delete_where.meta.root_names()) | set(keys))
            hit = read_dataset(data_dir, spec, needed).filter(delete_where)
            if keys:
                touched |= {partition_dir(spec, r) for r in hit.select(keys).unique().iter_rows()}
            elif hit.height:
                touched.add(spec.name)

    def gather(rel_dir: str) -> pl.DataFrame:
        """A partition's rows after the update: the stored ones that stay, then the new ones;
        a re-delivered row (same sort key) replaces the stored one (last wins)."""
        parts = []
        if not replace_all:
            existing = read_partition(data_dir, spec, rel_dir)
            if existing is not None:
                parts.append(existing.filter(~delete_where) if delete_where is not None else existing)
        if rel_dir in new_parts:
            parts.append(new_rows.read(rel_dir))
        if not parts:
            return pl.DataFrame()
        combined = pl.concat(parts, how="vertical_relaxed")
        # Checked on the key columns first: copying the text columns only when needed.
        if combined.select(pl.struct(list(spec.sort_by)).is_duplicated().any()).item():
            combined = combined.unique(subset=list(spec.sort_by), keep="last", maintain_order=True)
        return combined

    def write(rel_file: str, rows: pl.DataFrame) -> str:
        fault_point("stage-partition")
        write_parquet_atomic(spec, rows, data_dir, f"{_staging_rel(run_id)}/{rel_file}")
        return rel_file

    # Partitions are read in order on this thread while up to STAGE_WRITERS of them are
    # sorted and encoded on others: pyarrow encodes a Parquet file on one core, with the GIL
    # released. The next partition is read only while fewer than STAGE_WRITERS are being
    # written and they hold less than STAGE_BYTES_IN_FLIGHT (a segments partition at 1 GB of
    # input holds ~130 MB of text): at most that plus two partitions are held at once.
    with ThreadPoolExecutor(STAGE_WRITERS, thread_name_prefix=f"stage-{spec.name}") as pool:
        in_flight: deque[tuple[Future[str], int]] = deque()

        def finish_oldest() -> int:
            future, n_bytes = in_flight.popleft()
            plan.writes.append(future.result())
            return n_bytes

        held = 0
        for rel_dir in sorted(touched):
            while in_flight and (len(in_flight) >= STAGE_WRITERS or held >= STAGE_BYTES_IN_FLIGHT):
                held -= finish_oldest()
            rows = gather(rel_dir)
            rel_file = f"{rel_dir}/{PART_FILE}"
            if rows.height == 0:
                if rel_dir in existing_parts:
                    plan.deletes.append(rel_file)
                continue
            n_bytes = rows.estimated_size()
            in_flight.append((pool.submit(write, rel_file, rows), n_bytes))
            held += n_bytes
            del rows
        while in_flight:
            finish_oldest()
    _keep_one_partition_file(data_dir, run_id, spec, plan, existing_parts)
    return plan


def _keep_one_partition_file(
    data_dir: DataDirLike, run_id: str, spec: DatasetSpec, plan: CommitPlan, existing_parts: set[str]
) -> None:
    """A published dataset without rows keeps one empty partition file (its schema), so
    readers find it from the first run on; once other partitions hold rows, that empty file
    goes (the datasets then equal a run that never had it)."""
    if spec.empty_partition is None:
        return
    empty_dir = partition_dir(spec, spec.empty_partition)
    written = {rel.rsplit("/", 1)[0] for rel in plan.writes}
    final = (existing_parts - {rel.rsplit("/", 1)[0] for rel in plan.deletes}) | written
    if not final:
        rel_file = f"{empty_dir}/{PART_FILE}"
        write_parquet_atomic(spec, empty_frame(spec.schema), data_dir, f"{_staging_rel(run_id)}/{rel_file}")  # type: ignore[arg-type]
        plan.writes.append(rel_file)
    elif (
        empty_dir in final
        and empty_dir not in written
        and len(final) > 1
        and count_rows(data_dir, f"{empty_dir}/{PART_FILE}") == 0
    ):
        plan.deletes.append(f"{empty_dir}/{PART_FILE}")


def commit(data_dir: DataDirLike, plan: CommitPlan) -> None:
    """Write the commit record (the commit point), then apply it."""
    store = open_data_dir(data_dir)
    root = _staging_rel(plan.run_id)
    store.make_dirs(root)
    # The manifest (files) is moved into place last: it records what the run did.
    manifest_prefix = FILES.name + "/"
    writes = sorted(plan.writes, key=lambda p: (p.startswith(manifest_prefix), p))
    record = json.dumps({"run_id": plan.run_id, "writes": writes, "deletes": sorted(plan.deletes)}, indent=1)

    def write(where: str | pa.NativeFile) -> None:
        if isinstance(where, str):
            Path(where).write_text(record)
        else:
            where.write(record.encode("utf-8"))

    store.write_atomic(f"{root}/{COMMIT_FILE}", write, "commit-record", sync_dir=True)
    _apply(store, root)


def _apply(data_dir: DataDirLike, root: str) -> None:
    """Roll a committed staging folder (`root`, relative to the data dir) forward.
    Idempotent: safe to repeat after a crash."""
    store = open_data_dir(data_dir)
    record = json.loads(store.read_text(f"{root}/{COMMIT_FILE}"))
    for rel in [*record["deletes"], *record["writes"]]:
        parts = Path(rel).parts
        if Path(rel).is_absolute() or ".." in parts or not parts or parts[0] == STAGING_DIR:
            raise ValueError(
                f"refusing commit record {store.full(root)}/{COMMIT_FILE}: "
                f"path {rel!r} is not a dataset file inside {store.uri}"
            )
    touched: set[str] = set()
    for rel in record["deletes"]:
        fault_point("apply-delete")
        store.delete_file(rel)
    for rel in record["writes"]:
        fault_point("apply")
        staged = f"{root}/{rel}"
        if store.exists(staged):
            store.move(staged, rel)
            touched.add(rel.rsplit("/", 1)[0])
    store.sync_dirs(touched)
    fault_point("apply-cleanup")
    _remove_staging(store, root)
    store.clear_spill(root.rsplit("/", 1)[-1])


def _remove_staging(store: LocalDir | ArrowDir, root: str) -> None:
    """A run's staging folder, then `_staging/` itself once no run has one there."""
    store.rmtree(root)
    store.remove_dir_if_empty(STAGING_DIR)


def discard_run(data_dir: DataDirLike, run_id: str) -> None:
    """Remove what a failed run staged and spilled, at once (where the disk allows; what
    is left, the next run's recovery removes)."""
    store = open_data_dir(data_dir)
    try:
        if store.has_dir(_staging_rel(run_id)):
            _remove_staging(store, _staging_rel(run_id))
        store.clear_spill(run_id)
    except OSError:
        pass


def recover(data_dir: DataDirLike) -> list[str]:
    """Finish committed runs, discard interrupted ones and remove temporary files left by a
    crash mid-write (a partition's, a report page's); returns what was done."""
    store = open_data_dir(data_dir)
    done: list[str] = []
    store.clear_spill()  # a remote data dir's local spill of runs that never finished
    for run_id in store.list_dirs(STAGING_DIR) if store.has_dir(STAGING_DIR) else []:
        root = _staging_rel(run_id)
        if store.exists(f"{root}/{COMMIT_FILE}"):
            _apply(store, root)
            done.append(f"rolled forward committed run {run_id}")
        else:
            _remove_staging(store, root)
            done.append(f"discarded interrupted run {run_id}")
    done += [f"removed temporary file {rel}" for rel in store.remove_temp_files()]
    return done
