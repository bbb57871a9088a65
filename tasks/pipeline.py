"""The per-batch pipeline, read top to bottom: for each file of a batch

    load (decode, sha256; skip if unchanged) -> segment -> find + tag spans -> rows

then, for the batch: exact ids -> enrich -> MinHash signatures. Pure of Prefect, so a
worker process (or a Dask worker) imports only this and the step modules.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tasks.killpoints import checkpoint
from tasks.load import QuarantineError, load_bytes, read_file_bytes, sha256_hex
from tasks.rows import BatchFrames, BatchRows, batch_frames, page_rows
from tasks.schema import STATUS_PROCESSED, STATUS_QUARANTINED
from tasks.segment import segment_page

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


@dataclass
class BatchResult:
    frames: BatchFrames | None
    outcomes: list[FileOutcome] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)  # step -> seconds of CPU work


@contextmanager
def timed(timings: dict[str, float], step: str) -> Iterator[None]:
    """Add the wall time of the block to timings[step] (benchmark and run summary)."""
    start = time.perf_counter()
    try:
        yield
    finally:
        timings[step] = timings.get(step, 0.0) + time.perf_counter() - start


def process_files(seeds_dir: Path, source_files: list[str], known_sha: dict[str, str]) -> BatchResult:
    """Load -> segment -> tag -> enrich -> sign for a batch of files (pure of Prefect)."""
    rows = BatchRows()
    outcomes: list[FileOutcome] = []
    timings: dict[str, float] = {}
    for source_file in source_files:
        data: bytes | None = None
        try:
            with timed(timings, "load"):
                data = read_file_bytes(seeds_dir / source_file, source_file)
                sha = sha256_hex(data)
                if known_sha.get(source_file) == sha:
                    outcomes.append(FileOutcome(source_file, UNCHANGED, sha, len(data)))
                    continue
                loaded = load_bytes(data, source_file)
                checkpoint("decode")
            with timed(timings, "segment"):
                articles = segment_page(loaded.text)
            if not articles:
                raise QuarantineError(source_file, "no article found: the page has no title line and no related-articles block")
            with timed(timings, "tag"):
                page_rows(loaded, articles, rows)
            outcomes.append(FileOutcome(source_file, STATUS_PROCESSED, loaded.sha256, loaded.n_bytes, loaded.encoding, None, len(articles)))
        except QuarantineError as exc:
            sha = sha256_hex(data) if data is not None else None
            outcomes.append(FileOutcome(source_file, STATUS_QUARANTINED, sha, len(data) if data is not None else None, None, exc.reason))
        finally:
            data = None  # free the bytes of this file before the next one
    processed = any(o.status == STATUS_PROCESSED for o in outcomes)
    return BatchResult(batch_frames(rows, timings) if processed else None, outcomes, timings)
