"""Step 6 — write: partitioned Parquet datasets with an atomic, crash-safe commit.

Layout (hive style, zstd, one file per partition, rows sorted by the spec's sort key):

    data/<dataset>/<col>=<value>/.../part-0.parquet
    data/_staging/<run_id>/...      new partition files of a run in progress
    data/_staging/<run_id>/COMMIT.json   the commit record (written last, atomically)
    data/_staging/<run_id>/batches/<dataset>/b<n>.arrow
                                    rows batch n spilled, grouped by partition (see
                                    `spill_frame`; a local scratch folder when data/ is
                                    a remote URI)

A run writes every changed partition under `_staging/<run_id>/`, then writes
COMMIT.json (temp file + fsync + rename: that rename is the commit point), then moves
each staged file into place with os.replace (atomic per file; the `files` manifest
goes last) and deletes the staging folder. `recover()` runs before every run: a
staging folder without COMMIT.json is an interrupted run and is deleted (roll back);
one with COMMIT.json is finished (roll forward). Readers therefore never see a
partial Parquet file, and a crash at any point leaves either the old or the new data.
Partition files are named deterministically, so the same input gives the same bytes.

The data dir may also be a filesystem URI (`s3://bucket/newsflow`; tasks/storage.py): the
same steps in the same order, each file written in one upload (whole or absent) and moved
by copy + delete. All I/O below goes through that store, with paths relative to data/.
"""

from __future__ import annotations

import hashlib
import json
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Protocol

import polars as pl
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from tasks.killpoints import checkpoint
from tasks.schema import (
    ARTICLES,
    COMPRESSION,
    COMPRESSION_LEVEL,
    FILES,
    UNKNOWN_PARTITION,
    C,
    DatasetSpec,
)
from tasks.storage import STAGING_DIR, DataDirLike, open_data_dir

COMMIT_FILE = "COMMIT.json"
PART_FILE = "part-0.parquet"
# Spill files live for one run and are read once: Arrow IPC with lz4 (measured on an 8 MB
# batch: 0.31 s to write vs 0.64 s as lz4 Parquet, 9 MB vs 6 MB on disk).
SPILL_COMPRESSION = "lz4"
SPILL_SUFFIX = ".arrow"
SPILL_INDEX_KEY = "newsflow.partitions"  # spill file schema metadata: its partitions' record batches
N_SOURCE_BUCKETS = 16
# Staging: partitions encoded at once, and the bytes of rows being encoded past which the
# next partition is not read yet. Measured at 100 MB of input, staging every dataset:
# 6.7 -> 5.9-6.1 s (segments 2.4 -> 1.7 s; articles wait on reading their spill).
STAGE_WRITERS = 2
STAGE_BYTES_IN_FLIGHT = 256 << 20


def source_bucket(source_file: str) -> str:
    """Stable hash bucket of a source file: a changed file touches one partition per dataset."""
    digest = hashlib.sha256(source_file.encode("utf-8")).digest()
    return f"{int.from_bytes(digest[:4], 'big') % N_SOURCE_BUCKETS:02d}"


def with_partition_columns(spec: DatasetSpec, frame: pl.DataFrame) -> pl.DataFrame:
    """Add the spec's hive partition columns (strings) derived from the row's data."""
    if not spec.partition_by or set(spec.partition_by) <= set(frame.columns):
        return frame
    if spec.partition_by == (C.year, C.month):
        ts = pl.col(C.published_at)
        return frame.with_columns(
            ts.dt.year().cast(pl.String).fill_null(UNKNOWN_PARTITION).alias(C.year),
            ts.dt.month().cast(pl.String).str.zfill(2).fill_null(UNKNOWN_PARTITION).alias(C.month),
        )
    if spec.partition_by == (C.source_bucket,):
        # one hash per distinct file, not per row
        buckets = {f: source_bucket(f) for f in frame.get_column(C.source_file).unique().to_list()}
        return frame.with_columns(
            pl.col(C.source_file).replace_strict(buckets, return_dtype=pl.String).alias(C.source_bucket)
        )
    missing = set(spec.partition_by) - set(frame.columns)
    raise ValueError(f"{spec.name}: rows lack partition columns {sorted(missing)}")


def partition_dir(spec: DatasetSpec, values: Iterable[str]) -> str:
    parts = [spec.name] + [f"{col}={val}" for col, val in zip(spec.partition_by, values, strict=True)]
    return "/".join(parts)


def _sort_order(spec: DatasetSpec, frame: pl.DataFrame) -> pl.Series | None:
    """Row positions that sort `frame` by the spec's key (nulls last, stable), or None when
    it is sorted already. Only the key columns are sorted: the rows themselves are gathered
    a row group at a time while writing, so a partition is never held twice (sorting a
    whole frame copies every column, the text ones too)."""
    key = spec.sort_by
    if len(key) == 1 and frame[key[0]].null_count() == 0 and frame[key[0]].is_sorted():
        return None
    return frame.select(pl.arg_sort_by(list(key), nulls_last=True, maintain_order=True)).to_series()


def write_parquet_atomic(spec: DatasetSpec, frame: pl.DataFrame, data_dir: DataDirLike, rel: str) -> None:
    """Write one partition's rows as a Parquet file with exactly the spec's schema, sorted by
    its key, that readers see whole or not at all (`write_atomic` of LocalDir: temp name,
    fsync, rename; of ArrowDir: one upload). Written one row group at a time: the same
    bytes as one `pq.write_table` of the sorted table, with one row group's copy in memory."""
    frame = frame.select([f.name for f in spec.file_schema])
    order = _sort_order(spec, frame)

    def row_group(lo: int) -> pa.Table:
        n = spec.row_group_rows
        # rechunked: pages break where chunks do, and how the rows were read (in how many
        # pieces) must not change the bytes
        rows = frame.slice(lo, n).rechunk() if order is None else frame[order.slice(lo, n)]
        return rows.to_arrow().cast(spec.file_schema)

    def write(where: str | pa.NativeFile) -> None:
        options = {"compression": COMPRESSION, "compression_level": COMPRESSION_LEVEL, "write_statistics": True}
        with pq.ParquetWriter(where, spec.file_schema, **options) as writer:
            for lo in range(0, max(frame.height, 1), spec.row_group_rows):  # empty: one empty table, like write_table
                writer.write_table(row_group(lo), row_group_size=spec.row_group_rows)

    open_data_dir(data_dir).write_atomic(rel, write, "parquet-written")


def read_dataset(data_dir: DataDirLike, spec: DatasetSpec, columns: list[str] | None = None) -> pl.DataFrame:
    """Read a whole dataset (with partition columns) — an empty frame if it does not exist yet."""
    store = open_data_dir(data_dir)
    schema = spec.full_schema
    if columns is not None:
        schema = pa.schema([schema.field(c) for c in columns])
    files = store.list_files(spec.name, PART_FILE)
    if not files:
        return pl.from_arrow(schema.empty_table())  # type: ignore[return-value]
    dataset = ds.dataset(
        [store.full(f) for f in files],
        schema=spec.full_schema,
        format="parquet",
        partitioning=ds.partitioning(spec.partition_schema, flavor="hive") if spec.partition_by else None,
        partition_base_dir=store.full(spec.name),
        filesystem=store.filesystem(),
    )
    table = dataset.to_table(columns=columns)
    return pl.from_arrow(table)  # type: ignore[return-value]


def _read_partition(data_dir: DataDirLike, spec: DatasetSpec, rel_dir: str) -> pl.DataFrame | None:
    store = open_data_dir(data_dir)
    rel = f"{rel_dir}/{PART_FILE}"
    if not store.exists(rel):
        return None
    table = pq.read_table(store.full(rel), schema=spec.file_schema, filesystem=store.filesystem())
    return pl.from_arrow(table)  # type: ignore[return-value]


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


def spill_root(data_dir: DataDirLike, run_id: str) -> Path:
    """Local folder where a run's batches spill rows: inside the staging folder of a local
    data dir, a local scratch folder for a remote one (see tasks/storage.py)."""
    return open_data_dir(data_dir).spill_dir(run_id)


def spill_frame(root: Path, spec: DatasetSpec, frame: pl.DataFrame, batch_no: int) -> None:
    """Write one batch's rows of `spec` under `root` as one Arrow IPC file
    (`<dataset>/b<n>.arrow`), rows sorted by final partition, each partition in record
    batches of its own; the file's schema metadata lists them (with their bytes), so that
    staging a partition later reads only its record batches. Extra columns (C.batch,
    C.row) are kept. One file per batch and dataset, not per partition: the ~120 small
    files an 8 MB batch wrote took 0.55 s of its ~3 s, one file 0.2 s."""
    if not frame.height:
        return
    frame = with_partition_columns(spec, frame)
    keys = list(spec.partition_by)
    if keys:  # grouped by sorting: one table, sliced (partition_by copied each partition out)
        frame = frame.sort(keys, maintain_order=True)
        sizes = {partition_dir(spec, run[:-1]): run[-1] for run in frame.group_by(keys, maintain_order=True).len().iter_rows()}
    else:
        sizes = {spec.name: frame.height}
    # Plain (large) strings, not string views: pyarrow reads them back ~3x faster.
    table = frame.drop(keys).to_arrow(compat_level=pl.CompatLevel.oldest())
    index: list[dict] = []
    record_batches: list[pa.RecordBatch] = []
    offset = 0
    for rel_dir, n in sizes.items():
        part = table.slice(offset, n)
        offset += n
        runs = part.to_batches()
        index.append({"dir": rel_dir, "first": len(record_batches), "batches": len(runs), "bytes": part.nbytes})
        record_batches += runs
    folder = root / spec.name
    folder.mkdir(parents=True, exist_ok=True)
    options = pa.ipc.IpcWriteOptions(compression=SPILL_COMPRESSION)
    schema = table.schema.with_metadata({SPILL_INDEX_KEY: json.dumps(index)})
    with pa.ipc.new_file(str(folder / f"b{batch_no:06d}{SPILL_SUFFIX}"), schema, options=options) as writer:
        for batch in record_batches:
            writer.write_batch(batch)


def spill_files(root: Path, dataset: str) -> list[Path]:
    """Spilled files of one dataset, in batch order."""
    folder = root / dataset
    return sorted(folder.glob(f"b*{SPILL_SUFFIX}")) if folder.exists() else []


def spill_files_by_batch(root: Path, dataset: str) -> dict[int, Path]:
    """Spilled file of each batch of one dataset, by batch number (`b<n>` names)."""
    return {int(f.name[1:].split(".", 1)[0]): f for f in spill_files(root, dataset)}


@dataclass(frozen=True)
class SpillFile:
    """One batch's spill file of a dataset, and where each partition sits in it (its footer)."""

    path: Path
    parts: dict[str, tuple[int, int, int]]  # partition dir -> (first record batch, record batches, bytes)

    @classmethod
    def open(cls, path: Path) -> SpillFile:
        with pa.OSFile(str(path)) as source:
            index = json.loads(pa.ipc.open_file(source).schema.metadata[SPILL_INDEX_KEY.encode()])
        return cls(path, {p["dir"]: (p["first"], p["batches"], p["bytes"]) for p in index})

    def read(self, rel_dirs: list[str]) -> dict[str, pa.Table]:
        """The rows of these partitions (those the file has), reading only their record batches."""
        tables = {}
        with pa.OSFile(str(self.path)) as source:
            reader = pa.ipc.open_file(source)
            for rel_dir in rel_dirs:
                if rel_dir in self.parts:
                    first, n, _ = self.parts[rel_dir]
                    tables[rel_dir] = pa.Table.from_batches([reader.get_batch(i) for i in range(first, first + n)], schema=reader.schema)
        return tables


@dataclass
class SpilledRows:
    """New rows of `spec` that batch tasks spilled under `root`; `keep` narrows them (e.g.
    to this run's winning article rows) partition by partition, never all at once.

    Partitions are read in groups: reading one also reads the next ones (in sorted order,
    the order staging asks for them) while their bytes stay under `read_bytes`, so that a
    batch's file is opened once for many small partitions (72 months of articles at 1 GB:
    once, not 72 times); the rest of a group waits in `_read_ahead`. `read_bytes` also
    bounds the rows held before `keep` narrows them."""

    root: Path
    spec: DatasetSpec
    keep: Callable[[pl.LazyFrame], pl.LazyFrame] | None = None
    read_bytes: int = 64 << 20
    _read_ahead: dict[str, pl.DataFrame] = field(default_factory=dict, init=False, repr=False)

    @cached_property
    def _files(self) -> list[SpillFile]:
        return [SpillFile.open(path) for path in spill_files(self.root, self.spec.name)]

    @cached_property
    def _bytes(self) -> dict[str, int]:
        """Bytes of each partition's spilled rows (before `keep`), in partition order."""
        out: dict[str, int] = {}
        for f in self._files:
            for rel_dir, (_, _, n_bytes) in f.parts.items():
                out[rel_dir] = out.get(rel_dir, 0) + n_bytes
        return dict(sorted(out.items()))

    def partitions(self) -> set[str]:
        return set(self._bytes)

    def scan(self) -> pl.LazyFrame:
        """Every spilled row of the dataset (with `keep`)."""
        files = spill_files(self.root, self.spec.name)
        if not files:  # nothing spilled: empty, with the internal columns a `keep` may join on
            schema = dict(pl.from_arrow(self.spec.file_schema.empty_table()).schema)
            return pl.LazyFrame(schema={**schema, C.batch: pl.Int64, C.row: pl.UInt32})
        frame = pl.scan_ipc(files, hive_partitioning=False, glob=False)
        return self.keep(frame) if self.keep is not None else frame

    def read(self, rel_dir: str) -> pl.DataFrame:
        """One partition's rows (with `keep`) in batch order, with the spec's file columns."""
        if rel_dir not in self._read_ahead:
            self._read_ahead = self._read_group(self._group_from(rel_dir))
        return self._read_ahead.pop(rel_dir)

    def _group_from(self, rel_dir: str) -> list[str]:
        """rel_dir and the partitions after it that fit `read_bytes` with it."""
        group, total = [rel_dir], self._bytes.get(rel_dir, 0)
        for other, n_bytes in self._bytes.items():
            if other <= rel_dir:
                continue
            if total + n_bytes > self.read_bytes:
                break
            group.append(other)
            total += n_bytes
        return group

    def _read_group(self, group: list[str]) -> dict[str, pl.DataFrame]:
        columns = [f.name for f in self.spec.file_schema]
        pending: dict[str, list[pa.Table]] = {}
        done: dict[str, list[pl.DataFrame]] = {rel_dir: [] for rel_dir in group}

        def narrow() -> None:  # what is pending, through `keep`
            for rel_dir, tables in pending.items():
                frame = pl.from_arrow(pa.concat_tables(tables)).lazy()  # type: ignore[union-attr]
                done[rel_dir].append((self.keep(frame) if self.keep is not None else frame).select(columns).collect())
            pending.clear()

        held = 0
        for f in self._files:
            for rel_dir, table in f.read(group).items():
                pending.setdefault(rel_dir, []).append(table)
                held += f.parts[rel_dir][2]
            if held >= self.read_bytes:
                narrow()
                held = 0
        narrow()
        empty = pl.from_arrow(self.spec.file_schema.empty_table())
        return {rel_dir: pl.concat(frames) if frames else empty for rel_dir, frames in done.items()}  # type: ignore[misc]


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
            existing = _read_partition(data_dir, spec, rel_dir)
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
        checkpoint("stage-partition")
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
    return plan


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
            raise ValueError(f"refusing commit record {store.full(root)}/{COMMIT_FILE}: path {rel!r} is not a dataset file inside {store.uri}")
    touched: set[str] = set()
    for rel in record["deletes"]:
        checkpoint("apply-delete")
        store.delete_file(rel)
    for rel in record["writes"]:
        checkpoint("apply")
        staged = f"{root}/{rel}"
        if store.exists(staged):
            store.move(staged, rel)
            touched.add(rel.rsplit("/", 1)[0])
    store.sync_dirs(touched)
    checkpoint("apply-cleanup")
    store.rmtree(root)
    store.clear_spill(root.rsplit("/", 1)[-1])


def recover(data_dir: DataDirLike) -> list[str]:
    """Finish committed runs and discard interrupted ones; returns what was done."""
    store = open_data_dir(data_dir)
    done: list[str] = []
    store.clear_spill()  # a remote data dir's local spill of runs that never finished
    if not store.has_dir(STAGING_DIR):
        return done
    for run_id in store.list_dirs(STAGING_DIR):
        root = _staging_rel(run_id)
        if store.exists(f"{root}/{COMMIT_FILE}"):
            _apply(store, root)
            done.append(f"rolled forward committed run {run_id}")
        else:
            store.rmtree(root)
            done.append(f"discarded interrupted run {run_id}")
    done += [f"removed temporary file {rel}" for rel in store.remove_temp_files()]
    return done


def article_partition_of(frame: pl.DataFrame) -> pl.DataFrame:
    """Articles with their year/month partition columns (for summaries and tests)."""
    return with_partition_columns(ARTICLES, frame)
