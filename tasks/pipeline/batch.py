"""The per-batch pipeline: a batch of files -> its rows, spilled to the run's staging folder.

For each file of the batch:

    load (read, sha256: skip if unchanged; decode) -> segment -> tag -> rows

then, for the batch:

    enrich spans -> spill occurrences, segments, spans
    -> one row per article -> enrich articles -> sign -> spill articles and signatures

Each step is called once per page or per batch and hands its whole result to the next.
Pure of Prefect: a worker process (or a Dask worker) imports only this and the steps.

Spilling: a batch's rows go to Arrow IPC files under the run's spill folder (one file per
dataset, rows grouped by final partition: tasks/storage/spill.py), and only outcomes, the
article keys and the step stats travel back to the flow, which then stages partition by
partition (tasks/storage/commit.py): memory is bounded by a batch and a few partitions,
not by the run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from tasks.process.faults import fault_point
from tasks.process.memory import return_freed_memory
from tasks.process.stats import StepStats
from tasks.schema import ARTICLES, MINHASH_INDEX, OCCURRENCES, SEGMENTS, SPANS, STATUS_PROCESSED, STATUS_QUARANTINED, C
from tasks.steps.dedupe import one_per_article
from tasks.steps.enrich import enrich_articles, enrich_spans
from tasks.steps.langtag import tag_page
from tasks.steps.load import QuarantineError, load_bytes, read_file_bytes, sha256_hex
from tasks.steps.minhash import sign_articles
from tasks.steps.rows import BatchRows
from tasks.steps.segment import segment_page
from tasks.storage.spill import spill_frame

# What the manifest knows of a file from earlier runs: its sha256 and, when it was
# quarantined, the reason (None: processed).
KnownFile = tuple[str, str | None]


@dataclass
class FileOutcome:
    source_file: str
    status: str  # STATUS_PROCESSED | STATUS_QUARANTINED
    sha256: str | None = None
    n_bytes: int | None = None
    encoding: str | None = None
    reason: str | None = None
    n_articles: int = 0
    # the same bytes as when an earlier run recorded it: skipped, its manifest row kept
    unchanged: bool = False


@dataclass(frozen=True)
class OutcomeCounts:
    """Files by what became of them. A file quarantined by an earlier run and unchanged since
    counts as quarantined (and in `quarantined_before`), never as unchanged."""

    processed: int  # read and ingested by this run
    unchanged: int  # ingested before, the same bytes now: skipped
    quarantined: int
    quarantined_before: int


def count_outcomes(outcomes: list[FileOutcome]) -> OutcomeCounts:
    ingested = [o.unchanged for o in outcomes if o.status == STATUS_PROCESSED]
    quarantined = [o.unchanged for o in outcomes if o.status == STATUS_QUARANTINED]
    return OutcomeCounts(ingested.count(False), ingested.count(True), len(quarantined), quarantined.count(True))


@dataclass(frozen=True)
class Spill:
    """Where a batch writes its rows: the run's spill root and the batch's number."""

    root: str
    batch_no: int


@dataclass
class BatchResult:
    """What a batch hands back to the flow (its rows are in the spill)."""

    outcomes: list[FileOutcome] = field(default_factory=list)
    stats: StepStats = field(default_factory=StepStats)
    # The keys of the spilled article rows (C.article_id, C.kind, C.batch, C.row) and row
    # counts, so that the flow picks winners and sums up the run without reading the spill
    # again. None when the batch processed no file.
    article_keys: pl.DataFrame | None = None
    n_occurrences: int = 0
    spans_by_lang: dict[str, int] = field(default_factory=dict)
    # Wall-clock start and end (time.time(), comparable across processes on one machine):
    # the run's timeline finds from them when workers started and how long they sat idle.
    started_at: float = 0.0
    ended_at: float = 0.0


def process_files(seeds_dir: Path, source_files: list[str], known: dict[str, KnownFile], spill: Spill) -> BatchResult:
    """Load -> segment -> tag -> rows for each file, then enrich, sign and spill the batch.
    A file whose sha256 is `known` is skipped, with the outcome the manifest recorded."""
    stats = StepStats()
    rows = BatchRows()
    outcomes = [_add_file(seeds_dir, source_file, known.get(source_file), rows, stats) for source_file in source_files]
    if not any(o.status == STATUS_PROCESSED and not o.unchanged for o in outcomes):
        return BatchResult(outcomes, stats)
    with stats.track_time("rows"):
        frames = rows.take_frames()
    return_freed_memory()  # the row lists' memory, before polars allocates more
    root = Path(spill.root)
    with stats.track_time("enrich"):
        spans = enrich_spans(frames.spans)
    with stats.track_time("spill"):
        # Written before the articles are enriched and signed, and then dropped: they need
        # not be held through that work (~20 MB of a worker's peak for an 8 MB batch).
        for spec, frame in ((OCCURRENCES, frames.occurrences), (SEGMENTS, frames.segments), (SPANS, spans)):
            spill_frame(root, spec, frame, spill.batch_no)
    n_occurrences = frames.occurrences.height
    spans_by_lang = dict(spans.group_by(C.lang).len().sort(C.lang).iter_rows())
    candidates = frames.candidates
    del frames, spans
    with stats.track_time("enrich"):
        articles = enrich_articles(one_per_article(candidates.with_row_index("_order"), ["_order"]).drop("_order"))
    del candidates
    with stats.track_time("sign"):
        signatures = sign_articles(articles)
    with stats.track_time("spill"):
        keys = _spill_articles(root, spill.batch_no, articles, signatures)
    return BatchResult(outcomes, stats, keys, n_occurrences, spans_by_lang)


def _add_file(
    seeds_dir: Path, source_file: str, known: KnownFile | None, rows: BatchRows, stats: StepStats
) -> FileOutcome:
    """One file through load -> segment -> tag -> rows; its outcome."""
    data: bytes | None = None
    sha: str | None = None  # hashed once, right after the read: a quarantined file keeps it
    try:
        with stats.track_time("load"):
            data = read_file_bytes(seeds_dir / source_file, source_file)
            sha = sha256_hex(data)
            if known is not None and known[0] == sha:
                status = STATUS_PROCESSED if known[1] is None else STATUS_QUARANTINED
                return FileOutcome(source_file, status, sha, len(data), reason=known[1], unchanged=True)
            loaded = load_bytes(data, source_file, sha)
            fault_point("decode")
        with stats.track_time("segment"):
            articles = segment_page(loaded.text)
        if not articles:
            raise QuarantineError(
                source_file, "no article found: the page has no title line and no related-articles block"
            )
        with stats.track_time("tag"):
            tags = tag_page(loaded.text, articles)
        with stats.track_time("rows"):
            rows.add_page(loaded, articles, tags)
        return FileOutcome(
            source_file, STATUS_PROCESSED, loaded.sha256, loaded.n_bytes, loaded.encoding, None, len(articles)
        )
    except QuarantineError as exc:
        return FileOutcome(
            source_file, STATUS_QUARANTINED, sha, len(data) if data is not None else None, None, exc.reason
        )


def _spill_articles(root: Path, batch_no: int, articles: pl.DataFrame, signatures: pl.DataFrame) -> pl.DataFrame:
    """Write a batch's articles and signatures with their batch number and row (C.batch,
    C.row): the flow picks one winner per article_id across batches. Returns the spilled
    articles' keys (C.article_id, C.kind, C.batch, C.row)."""
    batch = pl.lit(batch_no, dtype=pl.Int64).alias(C.batch)
    articles = articles.with_columns(batch).with_row_index(C.row)
    spill_frame(root, ARTICLES, articles, batch_no)
    spill_frame(root, MINHASH_INDEX, signatures.with_columns(batch), batch_no)
    return articles.select(C.article_id, C.kind, C.batch, C.row)


def process_files_and_release(
    seeds_dir: Path, source_files: list[str], known: dict[str, KnownFile], spill: Spill
) -> BatchResult:
    """`process_files`, then hand the batch's freed heap back to the OS: the process (a pool
    worker, a Dask worker) goes on to other batches, and memory it keeps between batches
    adds to the run's peak (~370 -> ~300 MB a worker after an 8 MB batch)."""
    started_at = time.time()
    result = process_files(seeds_dir, source_files, known, spill)
    return_freed_memory()
    result.started_at, result.ended_at = started_at, time.time()
    return result
