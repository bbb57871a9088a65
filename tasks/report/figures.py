"""Every number and series of the data-quality report, computed from the datasets.

Each figure reads only the columns it needs, through lazy scans of the partition files
tasks/storage lists: polars' own Parquet reader on a local folder, a pyarrow dataset on the
store's filesystem for an object store. No text column is read except the few spans shown
as samples; the narrow numeric columns of `articles` and `spans` are collected once (~40
bytes a row) and every figure of them is computed from that. Histograms have fixed bins,
recorded with the figures, so anyone can recount them (tests/report does, in DuckDB SQL).
A dataset that does not exist yet gives zeros and empty series, never an error.

"This run" and "the last runs" come from the runs' own records (tasks/report/history.py).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import polars as pl
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from tasks.report.history import RunRecord, reason_category
from tasks.schema import (
    ARTICLES,
    DUPLICATES,
    FILES,
    OCCURRENCES,
    SPANS,
    STATUS_PROCESSED,
    STATUS_QUARANTINED,
    UNKNOWN_PARTITION,
    C,
    DatasetSpec,
)
from tasks.storage.parquet import PART_FILE, partition_dir, source_bucket
from tasks.storage.stores import DataDirLike, LocalDir, open_data_dir

# The English gloss of a span: shown when the data has it (a data folder written by a
# newsflow without glosses has none until a --full-refresh run).
GLOSS = C.gloss
ENTITY_COLUMNS = (C.people, C.places, C.organizations, C.keywords)
TOP_VALUES = 15  # people, places, organisations, keywords: the most named
TOP_FILES = 10  # files with the most untranslated text
SAMPLE_SPANS = 3  # spans shown for each of them

# Bins. A value x of a fixed histogram (lo, hi, n) falls in bin floor((x - lo) / width),
# clamped to [0, n - 1]. Edge histograms: bin i holds edges[i] <= x < edges[i + 1] (values
# below the first edge in bin 0, at or above the last in the last bin).
CONFIDENCE_BINS = (0.0, 1.0, 20)
SPAN_LENGTH_BINS = (0, 120, 24)  # characters, width 5; the last bin holds >= 115
SIMILARITY_BINS = (0.0, 1.0, 50)  # width 0.02: any threshold the flow accepts (0-1)
# untranslated_ratio of articles with any: mostly a few percent, so log-spaced edges
RATIO_EDGES = [0.0, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0000001]
# Body length on a log scale (4 bins a decade, 10 to 1,000,000 characters) as integer
# edges: polars' log10(1000) is 2.9999999999999996 where DuckDB's is 3.0, so bins of a
# float log10 would disagree at every exact decade.
LENGTH_EDGES = [math.ceil(10 ** (k / 4) - 1e-9) for k in range(4, 25)]
PARAGRAPHS_CAP = 40  # n_paragraphs >= 40 counted at 40
CLUSTER_CAP = 20  # near-duplicate clusters of >= 20 articles counted at 20

Rows = list[dict[str, Any]]


@dataclass
class Figures:
    """The report's numbers: plain data (`to_json` is what the page embeds)."""

    data_dir: str
    generated_at: str
    seconds: float = 0.0  # to compute these figures
    totals: dict[str, Any] = field(default_factory=dict)
    run: RunRecord | None = None  # "this run": the run that wrote the report, or the last recorded
    history: list[RunRecord] = field(default_factory=list)  # the last runs, oldest first, `run` last
    quarantine_run: Rows = field(default_factory=list)  # reason, files
    quarantine_total: Rows = field(default_factory=list)
    per_month: Rows = field(default_factory=list)  # year, month, articles, chars, untranslated_chars, ...
    unknown_month: dict[str, Any] = field(default_factory=dict)  # undated articles, apart
    ratio_hist: Rows = field(default_factory=list)  # articles with untranslated text
    ratio_zero: int = 0  # articles without
    spans_by_lang: Rows = field(default_factory=list)
    span_length_hist: Rows = field(default_factory=list)
    confidence_hist: Rows = field(default_factory=list)
    top_files: Rows = field(default_factory=list)  # with their first spans as `samples`
    has_gloss: bool = False
    cluster_sizes: Rows = field(default_factory=list)
    similarity_hist: Rows = field(default_factory=list)
    entities: dict[str, Rows] = field(default_factory=dict)
    length_hist: Rows = field(default_factory=list)
    paragraphs: Rows = field(default_factory=list)
    bins: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        import json

        return json.dumps(asdict(self), sort_keys=True, ensure_ascii=False, default=str)


# ---------------------------------------------------------------------------- reading


class Datasets:
    """Lazy scans of one data folder's published datasets."""

    def __init__(self, data_dir: DataDirLike) -> None:
        self.store = open_data_dir(data_dir)

    def paths(self, spec: DatasetSpec) -> list[str]:
        return [self.store.full(rel) for rel in self.store.list_files(spec.name, PART_FILE)]

    def scan(self, spec: DatasetSpec) -> pl.LazyFrame | None:
        """The dataset with its partition columns (strings), or None when it has no file."""
        paths = self.paths(spec)
        if not paths:
            return None
        if isinstance(self.store, LocalDir):
            hive = {p: pl.String for p in spec.partition_by}
            # glob=False: the paths are files, not patterns (a folder may be named data[1]);
            # extra columns of later files (a column added since) are not read.
            return pl.scan_parquet(paths, hive_partitioning=True, hive_schema=hive, glob=False, extra_columns="ignore")
        dataset = ds.dataset(
            paths,
            format="parquet",
            partitioning=ds.partitioning(spec.partition_schema, flavor="hive"),
            partition_base_dir=self.store.full(spec.name),
            filesystem=self.store.filesystem(),
        )
        return pl.scan_pyarrow_dataset(dataset)

    def has_column(self, spec: DatasetSpec, column: str) -> bool:
        """Some file of the dataset has the column (from the files' footers)."""
        fs = self.store.filesystem()
        return any(column in pq.read_schema(p, filesystem=fs).names for p in self.paths(spec))

    def read_partition(self, rel_dir: str, columns: list[str], keep: pl.Expr) -> pl.DataFrame | None:
        """The rows of one partition file matching `keep`: the columns it has of `columns`."""
        rel = f"{rel_dir}/{PART_FILE}"
        if not self.store.exists(rel):
            return None
        path, fs = self.store.full(rel), self.store.filesystem()
        present = [c for c in columns if c in pq.read_schema(path, filesystem=fs).names]
        return pl.from_arrow(pq.read_table(path, columns=present, filesystem=fs)).filter(keep)  # type: ignore[union-attr]


# ---------------------------------------------------------------------------- histograms


def fixed_histogram(lf: pl.LazyFrame, value: pl.Expr, lo: float, hi: float, bins: int) -> Rows:
    """Counts in `bins` equal bins over [lo, hi); values outside count in the first/last."""
    width = (hi - lo) / bins
    index = ((value.cast(pl.Float64) - lo) / width).floor().clip(0, bins - 1).cast(pl.Int64)
    counts = dict(lf.select(index.alias("bin")).drop_nulls().group_by("bin").len().collect().iter_rows())
    return [{"bin": i, "lo": lo + i * width, "hi": lo + (i + 1) * width, "n": counts.get(i, 0)} for i in range(bins)]


def edge_histogram(lf: pl.LazyFrame, value: pl.Expr, edges: list[float] | list[int]) -> Rows:
    """Counts in bins [edges[i], edges[i + 1]), compared as the edges' own type."""
    bins = len(edges) - 1
    index = (pl.sum_horizontal([(value >= e).cast(pl.Int64) for e in edges]) - 1).clip(0, bins - 1)
    counts = dict(lf.select(index.alias("bin")).group_by("bin").len().collect().iter_rows())
    return [{"bin": i, "lo": edges[i], "hi": edges[i + 1], "n": counts.get(i, 0)} for i in range(bins)]


def capped_counts(lf: pl.LazyFrame, value: pl.Expr, lo: int, cap: int, name: str) -> Rows:
    """How many rows have each integer value lo..cap (values >= cap counted at cap)."""
    counts = dict(lf.select(value.clip(lo, cap).alias(name)).group_by(name).len().collect().iter_rows())
    return [{name: v, "n": counts.get(v, 0)} for v in range(lo, cap + 1)]


def _count(lf: pl.LazyFrame | None) -> int:
    return lf.select(pl.len()).collect().item() if lf is not None else 0


def _ranked(counts: dict[str, int], key: str, value: str) -> Rows:
    """Most first, then by name."""
    return [{key: k, value: n} for k, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]


# ---------------------------------------------------------------------------- the figures


def compute(
    data_dir: DataDirLike,
    run: RunRecord | None = None,
    records: list[RunRecord] | None = None,
    *,
    history_runs: int,
    now: datetime | None = None,
) -> Figures:
    """Every figure of the report. `run`: this run's record (default: the last of `records`,
    the runs recorded so far, oldest first); `history_runs`: how many runs the "last runs"
    charts show (flows/defaults.py::REPORT_RUNS)."""
    started = time.perf_counter()
    store = open_data_dir(data_dir)
    fig = Figures(
        data_dir=store.uri, generated_at=(now or datetime.now(UTC)).astimezone(UTC).isoformat(timespec="seconds")
    )
    fig.bins = {
        "confidence": list(CONFIDENCE_BINS),
        "span_length": list(SPAN_LENGTH_BINS),
        "similarity": list(SIMILARITY_BINS),
        "ratio_edges": RATIO_EDGES,
        "length_edges": LENGTH_EDGES,
        "paragraphs_cap": PARAGRAPHS_CAP,
        "cluster_cap": CLUSTER_CAP,
    }
    data = Datasets(store)
    totals: dict[str, Any] = {"occurrences": _count(data.scan(OCCURRENCES))}
    totals |= _files(fig, data.scan(FILES))
    totals |= _articles(fig, data.scan(ARTICLES))
    totals |= _spans(fig, data)
    totals |= _duplicates(fig, data.scan(DUPLICATES))
    fig.totals = totals
    _runs(fig, run, records or [], history_runs)
    fig.seconds = time.perf_counter() - started
    return fig


def _files(fig: Figures, files: pl.LazyFrame | None) -> dict[str, Any]:
    """The manifest: files by status, bytes, quarantined files by reason."""
    if files is None:
        return {"files": 0, "files_processed": 0, "files_quarantined": 0, "bytes": 0}
    status = pl.col(C.status)
    row = (
        files.select(
            pl.len().alias("files"),
            (status == STATUS_PROCESSED).sum().alias("files_processed"),
            (status == STATUS_QUARANTINED).sum().alias("files_quarantined"),
            pl.col(C.n_bytes).sum().alias("bytes"),
        )
        .collect()
        .row(0, named=True)
    )
    # Few files are quarantined: their reasons are grouped here, by one function shared
    # with the run's record (history.reason_category).
    quarantined = files.filter(status == STATUS_QUARANTINED).select(C.source_file, C.reason).collect()
    counts: dict[str, int] = {}
    for source_file, reason in quarantined.iter_rows():
        category = reason_category(source_file, reason)
        counts[category] = counts.get(category, 0) + 1
    fig.quarantine_total = _ranked(counts, "reason", "files")
    return {k: int(v or 0) for k, v in row.items()}


def _articles(fig: Figures, articles: pl.LazyFrame | None) -> dict[str, Any]:
    """Articles per month, the untranslated share over time and its distribution, entities,
    article length and paragraphs."""
    if articles is None:
        return {"articles": 0, "articles_with_untranslated": 0, "untranslated_share": 0.0}
    narrow = articles.select(C.year, C.month, C.n_chars, C.n_paragraphs, C.untranslated_ratio).collect().lazy()
    ratio, chars = pl.col(C.untranslated_ratio), pl.col(C.n_chars)
    months = (
        narrow.group_by(C.year, C.month)
        .agg(
            pl.len().alias("articles"),
            chars.sum().alias("chars"),
            (ratio * chars).sum().alias("untranslated_chars"),
            (ratio > 0).sum().alias("with_untranslated"),
        )
        .sort(C.year, C.month)
        .collect()
    )
    fig.per_month = months.filter(pl.col(C.year) != UNKNOWN_PARTITION).to_dicts()
    unknown = months.filter(pl.col(C.year) == UNKNOWN_PARTITION).to_dicts()
    none = {"articles": 0, "chars": 0, "untranslated_chars": 0.0, "with_untranslated": 0}
    fig.unknown_month = unknown[0] if unknown else {C.year: UNKNOWN_PARTITION, C.month: UNKNOWN_PARTITION} | none
    fig.ratio_hist = edge_histogram(narrow.filter(ratio > 0), ratio, RATIO_EDGES)
    fig.ratio_zero = _count(narrow.filter(ratio == 0))
    fig.length_hist = edge_histogram(narrow, chars, LENGTH_EDGES)
    fig.paragraphs = capped_counts(narrow, pl.col(C.n_paragraphs), 0, PARAGRAPHS_CAP, "paragraphs")
    # articles naming each value (a value listed twice in one article counts once)
    tops = pl.collect_all(
        [
            articles.select(pl.col(col).list.unique().alias("value"))
            .explode("value")
            .drop_nulls()
            .group_by("value")
            .agg(pl.len().alias("articles"))
            .sort(["articles", "value"], descending=[True, False])
            .head(TOP_VALUES)
            for col in ENTITY_COLUMNS
        ]
    )
    fig.entities = {col: top.to_dicts() for col, top in zip(ENTITY_COLUMNS, tops, strict=True)}
    n, total_chars, untranslated = (
        narrow.select(pl.len(), chars.sum(), (ratio * chars).sum()).collect().row(0)  # type: ignore[misc]
    )
    return {
        "articles": n,
        "articles_with_untranslated": n - fig.ratio_zero,
        "untranslated_share": untranslated / total_chars if total_chars else 0.0,
    }


def _spans(fig: Figures, data: Datasets) -> dict[str, Any]:
    """Spans by language, their length and confidence, the files with the most untranslated
    text and their first spans (with glosses where the data has them)."""
    spans = data.scan(SPANS)
    if spans is None:
        return {"spans": 0, "untranslated_chars": 0}
    length = pl.col(C.char_end) - pl.col(C.char_start)
    narrow = spans.select(C.source_file, C.lang, C.char_start, C.char_end, C.confidence).collect().lazy()
    fig.spans_by_lang = (
        narrow.group_by(C.lang)
        .agg(pl.len().alias("spans"), length.sum().alias("chars"))
        .sort(["spans", C.lang], descending=[True, False])
        .collect()
        .to_dicts()
    )
    fig.span_length_hist = fixed_histogram(narrow, length, *SPAN_LENGTH_BINS)
    fig.confidence_hist = fixed_histogram(narrow, pl.col(C.confidence), *CONFIDENCE_BINS)
    top = (
        narrow.group_by(C.source_file)
        .agg(
            pl.len().alias("spans"),
            length.sum().alias("untranslated_chars"),
            pl.col(C.lang).unique().sort().str.join(", ").alias("langs"),
        )
        .sort(["untranslated_chars", C.source_file], descending=[True, False])
        .head(TOP_FILES)
        .collect()
    )
    fig.has_gloss = data.has_column(SPANS, GLOSS)
    samples = _first_spans(data, top.get_column(C.source_file).to_list())
    sizes = _file_sizes(data, top.get_column(C.source_file).to_list())
    fig.top_files = [
        row | {C.n_bytes: sizes.get(row[C.source_file]), "samples": samples.get(row[C.source_file], [])}
        for row in top.to_dicts()
    ]
    n, chars = narrow.select(pl.len(), length.sum()).collect().row(0)
    return {"spans": n, "untranslated_chars": int(chars or 0)}


def _first_spans(data: Datasets, source_files: list[str]) -> dict[str, Rows]:
    """The first SAMPLE_SPANS spans of each file, read from the files' own partitions only
    (text columns of a handful of rows; `gloss` where a partition has it)."""
    by_bucket: dict[str, list[str]] = {}
    for f in source_files:
        by_bucket.setdefault(source_bucket(f), []).append(f)
    columns = [C.source_file, C.char_start, C.text, C.pinyin, C.lang, GLOSS]
    out: dict[str, Rows] = {}
    for bucket, names in sorted(by_bucket.items()):
        rows = data.read_partition(partition_dir(SPANS, [bucket]), columns, pl.col(C.source_file).is_in(names))
        if rows is None:
            continue
        first = rows.sort(C.source_file, C.char_start).group_by(C.source_file, maintain_order=True).head(SAMPLE_SPANS)
        for row in first.to_dicts():
            out.setdefault(row.pop(C.source_file), []).append(row)
    return out


def _file_sizes(data: Datasets, source_files: list[str]) -> dict[str, int | None]:
    files = data.scan(FILES)
    if files is None or not source_files:
        return {}
    picked = files.filter(pl.col(C.source_file).is_in(source_files)).select(C.source_file, C.n_bytes).collect()
    return dict(picked.iter_rows())


def _duplicates(fig: Figures, links: pl.LazyFrame | None) -> dict[str, Any]:
    """Near-duplicate links: clusters (a canonical and its near-duplicates) and similarity."""
    if links is None:
        return {"near_duplicate_links": 0, "near_duplicate_clusters": 0}
    narrow = links.select(C.duplicate_of, C.similarity).collect().lazy()
    sizes = narrow.group_by(C.duplicate_of).agg((pl.len() + 1).cast(pl.Int64).alias("size"))
    fig.cluster_sizes = capped_counts(sizes, pl.col("size"), 2, CLUSTER_CAP, "size")
    fig.similarity_hist = fixed_histogram(narrow, pl.col(C.similarity), *SIMILARITY_BINS)
    n, clusters = narrow.select(pl.len(), pl.col(C.duplicate_of).n_unique()).collect().row(0)
    return {"near_duplicate_links": n, "near_duplicate_clusters": clusters}


def _runs(fig: Figures, run: RunRecord | None, records: list[RunRecord], history_runs: int) -> None:
    """This run and the runs before it (its record last, whether or not it was written)."""
    if run is None and records:
        run = records[-1]
    earlier = [r for r in records if run is None or r.run_id != run.run_id]
    if run is not None:
        earlier = [r for r in earlier if (r.started_at, r.run_id) <= (run.started_at, run.run_id)]
    fig.run = run
    fig.history = (earlier + ([run] if run else []))[-history_runs:] if history_runs > 0 else []
    if run is not None:
        fig.quarantine_run = _ranked(run.quarantined_by_reason, "reason", "files")
