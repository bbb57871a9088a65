"""Partitioned Parquet datasets: where a row's partition is, how a partition file is written
(sorted, one row group at a time, readers see it whole or not at all) and how a dataset is
read back.

Layout (hive style, zstd, one file per partition, rows sorted by the spec's sort key):

    data/<dataset>/<col>=<value>/.../part-0.parquet

Partition files are named deterministically, so the same rows give the same bytes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import polars as pl
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from tasks.schema import COMPRESSION, COMPRESSION_LEVEL, UNKNOWN_PARTITION, C, DatasetSpec, empty_frame
from tasks.storage.stores import DataDirLike, open_data_dir

PART_FILE = "part-0.parquet"
N_SOURCE_BUCKETS = 16


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


def read_dataset(
    data_dir: DataDirLike, spec: DatasetSpec, columns: list[str] | None = None, where: ds.Expression | None = None
) -> pl.DataFrame:
    """Read a whole dataset (with partition columns) — an empty frame if it does not exist yet.
    `where`: only the rows it keeps, filtered while scanning (the rest is never held)."""
    store = open_data_dir(data_dir)
    schema = spec.full_schema
    if columns is not None:
        schema = pa.schema([schema.field(c) for c in columns])
    files = store.list_files(spec.name, PART_FILE)
    if not files:
        return empty_frame(schema)
    dataset = ds.dataset(
        [store.full(f) for f in files],
        schema=spec.full_schema,
        format="parquet",
        partitioning=ds.partitioning(spec.partition_schema, flavor="hive") if spec.partition_by else None,
        partition_base_dir=store.full(spec.name),
        filesystem=store.filesystem(),
    )
    table = dataset.to_table(columns=columns, filter=where)
    return pl.from_arrow(table)  # type: ignore[return-value]


def count_rows(data_dir: DataDirLike, rel: str) -> int:
    """Rows of one Parquet file, from its footer."""
    store = open_data_dir(data_dir)
    return pq.read_metadata(store.full(rel), filesystem=store.filesystem()).num_rows


def read_partition(data_dir: DataDirLike, spec: DatasetSpec, rel_dir: str) -> pl.DataFrame | None:
    store = open_data_dir(data_dir)
    rel = f"{rel_dir}/{PART_FILE}"
    if not store.exists(rel):
        return None
    table = pq.read_table(store.full(rel), schema=spec.file_schema, filesystem=store.filesystem())
    return pl.from_arrow(table)  # type: ignore[return-value]
