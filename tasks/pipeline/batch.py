"""The per-batch pipeline, read top to bottom: for each file of a batch

    load (decode, sha256; skip if unchanged) -> segment -> find + tag spans -> rows

then, for the batch: spill the final rows (occurrences, segments, spans) -> exact ids ->
enrich -> MinHash signatures -> spill the articles and signatures. Pure of Prefect,
so a worker process (or a Dask worker) imports only this and the step modules.

Spilling: a batch's rows go to Arrow IPC files under the run's staging folder, one file
per dataset with the rows grouped by final partition (tasks.storage.commit.spill_frame), and only
outcomes and timings travel back to the flow. The flow then
stages partition by partition (tasks.storage.commit.stage_update): memory is bounded by a batch and
a few partitions, not by the run (measured before: the flow held ~12 MB per MB of input).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import polars as pl

from tasks.process.memory import return_freed_memory
from tasks.process.faults import fault_point
from tasks.steps.load import QuarantineError, load_bytes, read_file_bytes, sha256_hex
from tasks.steps.rows import BatchFrames, BatchRows, RowFrames, article_frames, page_rows
from tasks.schema import (
    ARTICLES,
    MINHASH_INDEX,
    OCCURRENCES,
    SEGMENTS,
    SPANS,
    STATUS_PROCESSED,
    STATUS_QUARANTINED,
    C,
)
from tasks.steps.segment import segment_page
from tasks.storage.spill import spill_frame

UNCHANGED = "unchanged"  # outcome of a file whose sha256 is already in the manifest


@dataclass
class FileOutcome:
    source_file: str
    status: str  # STATUS_PROCESSED | STATUS_QUARANTINED | UNCHANGED
    sha256: str | None = None
    n_bytes: int | None = None
    encoding: str | None = None
    reason: str | None = None
    n_articles: int = 0


@dataclass(frozen=True)
class Spill:
    """Where a batch writes its rows: the run's spill root and the batch's number."""

    root: str
    batch_no: int


@dataclass
class BatchResult:
    frames: BatchFrames | None  # None when spilled (or nothing was processed)
    outcomes: list[FileOutcome] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)  # step -> seconds of CPU work
    # When spilled: the keys of the spilled article rows (C.article_id, C.kind, C.batch,
    # C.row) and row counts, so that the flow picks winners and sums up the run without
    # reading the spill again (that re-read was ~6 s of the flow's own time at 1 GB).
    article_keys: pl.DataFrame | None = None
    n_occurrences: int = 0
    spans_by_lang: dict[str, int] = field(default_factory=dict)
    # Wall-clock start and end (time.time(), comparable across processes on one machine):
    # the run's timeline (flows/ingest.py::batch_timeline) finds from them when workers
    # started and how long they sat idle.
    started_at: float = 0.0
    ended_at: float = 0.0


@contextmanager
def timed(timings: dict[str, float], step: str) -> Iterator[None]:
    """Add the wall time of the block to timings[step] (benchmark and run summary)."""
    start = time.perf_counter()
    try:
        yield
    finally:
        timings[step] = timings.get(step, 0.0) + time.perf_counter() - start


def spill_final_rows(frames: RowFrames, spill: Spill) -> RowFrames:
    """Write the batch's occurrences, segments and spans (final before enrichment) under the
    spill root; return the frames without them, so that enrichment and signing never hold
    them too (they were ~20 MB of a worker's peak for an 8 MB batch)."""
    root = Path(spill.root)
    for spec, frame in ((OCCURRENCES, frames.occurrences), (SEGMENTS, frames.segments), (SPANS, frames.spans)):
        spill_frame(root, spec, frame, spill.batch_no)
    return replace(frames, occurrences=frames.occurrences.clear(), segments=frames.segments.clear(), spans=frames.spans.clear())


def spill_articles(frames: BatchFrames, spill: Spill) -> pl.DataFrame:
    """Write a batch's articles and signatures under the spill root, with their batch number
    and row (C.batch, C.row): the flow picks one winner per article_id across batches.
    Returns the spilled articles' keys (C.article_id, C.kind, C.batch, C.row)."""
    root = Path(spill.root)
    batch = pl.lit(spill.batch_no, dtype=pl.Int64).alias(C.batch)
    articles = frames.articles.with_columns(batch).with_row_index(C.row)
    spill_frame(root, ARTICLES, articles, spill.batch_no)
    spill_frame(root, MINHASH_INDEX, frames.signatures.with_columns(batch), spill.batch_no)
    return articles.select(C.article_id, C.kind, C.batch, C.row)


def process_files(seeds_dir: Path, source_files: list[str], known_sha: dict[str, str], spill: Spill | None = None) -> BatchResult:
    """Load -> segment -> tag -> enrich -> sign for a batch of files (pure of Prefect);
    with `spill`, the rows are written there and the result carries no frames."""
    rows = BatchRows()
    outcomes: list[FileOutcome] = []
    timings: dict[str, float] = {}
    for source_file in source_files:
        data: bytes | None = None
        sha: str | None = None  # hashed once, right after the read: a quarantined file keeps it
        try:
            with timed(timings, "load"):
                data = read_file_bytes(seeds_dir / source_file, source_file)
                sha = sha256_hex(data)
                if known_sha.get(source_file) == sha:
                    outcomes.append(FileOutcome(source_file, UNCHANGED, sha, len(data)))
                    continue
                loaded = load_bytes(data, source_file, sha)
                fault_point("decode")
            with timed(timings, "segment"):
                articles = segment_page(loaded.text)
            if not articles:
                raise QuarantineError(source_file, "no article found: the page has no title line and no related-articles block")
            with timed(timings, "tag"):
                page_rows(loaded, articles, rows)
            outcomes.append(FileOutcome(source_file, STATUS_PROCESSED, loaded.sha256, loaded.n_bytes, loaded.encoding, None, len(articles)))
        except QuarantineError as exc:
            outcomes.append(FileOutcome(source_file, STATUS_QUARANTINED, sha, len(data) if data is not None else None, None, exc.reason))
        finally:
            data = None  # free the bytes of this file before the next one
    if not any(o.status == STATUS_PROCESSED for o in outcomes):
        return BatchResult(None, outcomes, timings)
    with timed(timings, "tag"):
        row_frames = rows.take_frames()
    return_freed_memory()  # the row lists' memory, before polars allocates more
    if spill is None:
        return BatchResult(article_frames(row_frames, timings), outcomes, timings)
    n_occurrences = row_frames.occurrences.height
    spans_by_lang = dict(row_frames.spans.group_by(C.lang).len().sort(C.lang).iter_rows())
    with timed(timings, "spill"):
        row_frames = spill_final_rows(row_frames, spill)
    frames = article_frames(row_frames, timings)
    del row_frames
    with timed(timings, "spill"):
        keys = spill_articles(frames, spill)
    return BatchResult(None, outcomes, timings, keys, n_occurrences, spans_by_lang)


def process_files_and_release(seeds_dir: Path, source_files: list[str], known_sha: dict[str, str], spill: Spill) -> BatchResult:
    """`process_files`, then hand the batch's freed heap back to the OS: the process (a pool
    worker, a Dask worker) goes on to other batches, and memory it keeps between batches
    adds to the run's peak (measured: ~370 -> ~300 MB a worker after an 8 MB batch)."""
    started_at = time.time()
    result = process_files(seeds_dir, source_files, known_sha, spill)
    return_freed_memory()
    result.started_at, result.ended_at = started_at, time.time()
    return result
