"""What each run records for the report, and the report's files under `<data>/_reports/`.

    _reports/latest.html          the report of the datasets as they stand
    _reports/runs/<run_id>.json   one run's record (RunRecord): counts, step times, bytes
    _reports/runs/<run_id>.html   the report as that run left the datasets

One small file per run, never a file appended to: object stores cannot append, and each
file is written whole or not at all by tasks/storage's `write_atomic` (on a local folder a
temp name `.<name>.tmp` + rename, which `recover()` removes after a crash; on an object
store one upload). Readers of the datasets skip `_reports/` (a folder starting with `_`).
Records and pages beyond a bound are deleted, oldest run first.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs

from tasks.pipeline.summary import RunSummary
from tasks.process.flock import flock_within
from tasks.storage.stores import REPORTS_DIR, LocalDir, open_data_dir

RUNS_DIR = f"{REPORTS_DIR}/runs"
LATEST_PAGE = f"{REPORTS_DIR}/latest.html"
# A page is ~0.5 MB: 100 of them are ~50 MB beside the datasets. A record is ~1 KB; 1,000 of
# them are read in well under a second, and the charts show the last few dozen runs.
RUN_PAGES_KEPT = 100
RUN_RECORDS_KEPT = 1_000
RECORD_SCHEMA = 1
WRITE_POINT = "report-written"  # tasks/process/faults.py: before a report file is renamed in
WRITERS_WAIT_SECONDS = 60.0  # for another report being written (a few seconds)
MB = 1 << 20


@dataclass
class RunRecord:
    """One run as the report charts it (written after the run's commit)."""

    run_id: str
    started_at: str  # ISO 8601 UTC
    flow_run_name: str = ""
    # From the flow's start to its commit: what the run's throughput divides by (the
    # artifacts and the report itself come after).
    seconds_to_commit: float = 0.0
    step_seconds: dict[str, float] = field(default_factory=dict)
    global_steps_seconds: float = 0.0
    bytes_seen: int = 0  # every file the run looked at
    bytes_read: int = 0  # of them, the files not skipped as unchanged
    files_seen: int = 0
    files_processed: int = 0
    files_unchanged: int = 0
    files_quarantined: int = 0
    files_quarantined_before: int = 0
    quarantined_by_reason: dict[str, int] = field(default_factory=dict)
    occurrences: int = 0
    articles_in_run: int = 0
    articles_new: int = 0
    articles_total: int = 0
    near_duplicates_new: int = 0
    near_duplicates_total: int = 0
    spans: int = 0
    spans_by_lang: dict[str, int] = field(default_factory=dict)
    partitions_written: int = 0
    partitions_deleted: int = 0
    # earlier runs this one's recovery finished (tasks/storage/commit.py::recover): their
    # changes reached the datasets now, and their own reports were never written
    rolled_forward: int = 0
    schema: int = RECORD_SCHEMA

    @property
    def mb_per_s(self) -> float:
        return self.bytes_seen / MB / self.seconds_to_commit if self.seconds_to_commit > 0 else 0.0

    @property
    def files_per_s(self) -> float:
        return self.files_seen / self.seconds_to_commit if self.seconds_to_commit > 0 else 0.0

    @property
    def changed_datasets(self) -> bool:
        return bool(self.partitions_written or self.partitions_deleted or self.rolled_forward)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, indent=1)

    @classmethod
    def from_json(cls, text: str) -> RunRecord | None:
        """A record read back, or None when the text is not one. Unknown keys are ignored
        and missing ones take their defaults, so the format can grow."""
        try:
            obj = json.loads(text)
        except ValueError:
            return None
        if not isinstance(obj, dict) or not isinstance(obj.get("run_id"), str):
            return None
        if not isinstance(obj.get("started_at"), str):
            return None
        values: dict[str, Any] = {}
        for f in fields(cls):
            if f.name not in obj:
                continue
            value = _checked(obj[f.name], f.type)
            if value is None:
                return None
            values[f.name] = value
        return cls(**values)


def _checked(value: Any, kind: Any) -> Any:
    """`value` if it has the field's type (ints are accepted as floats), else None."""
    kind = str(kind)
    if kind == "str":
        return value if isinstance(value, str) else None
    if kind == "int":
        return value if isinstance(value, int) and not isinstance(value, bool) else None
    if kind == "float":
        return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
    if kind.startswith("dict"):
        ok = isinstance(value, dict) and all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in value.values()
        )
        return value if ok else None
    return None


def reason_category(source_file: str, reason: str | None) -> str:
    """A quarantine reason without its file and specifics, to count files by reason:
    "'a.txt': no body: the page holds ..." -> "no body". Reasons start with the file's repr
    (tasks/steps/load.py::QuarantineError); the category is what comes before the first
    ':', ';', ',', '(' or ' — ', numbers as N."""
    text = (reason or "").removeprefix(f"{source_file!r}: ").strip()
    head = re.split(r"[:;,(]| — ", text, maxsplit=1)[0].strip()
    return re.sub(r"\d+", "N", head)[:60].rstrip() or "no reason given"


def quarantined_by_reason(quarantined: dict[str, str]) -> dict[str, int]:
    """Files per reason category, most first (then by name)."""
    counts: dict[str, int] = {}
    for source_file, reason in quarantined.items():
        category = reason_category(source_file, reason)
        counts[category] = counts.get(category, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def record_for(summary: RunSummary, started_at: datetime, flow_run_name: str = "") -> RunRecord:
    """What a run records, from its summary (called after its commit)."""
    outcomes = summary.outcomes
    return RunRecord(
        run_id=summary.run_id,
        started_at=started_at.astimezone(UTC).isoformat(timespec="seconds"),
        flow_run_name=flow_run_name,
        seconds_to_commit=summary.timeline.get("committed", summary.wall_seconds),
        step_seconds=dict(summary.step_seconds),
        global_steps_seconds=summary.global_steps_seconds,
        bytes_seen=sum(o.n_bytes or 0 for o in outcomes),
        bytes_read=sum(o.n_bytes or 0 for o in outcomes if not o.unchanged),
        files_seen=summary.files_seen,
        files_processed=summary.files_processed,
        files_unchanged=summary.files_unchanged,
        files_quarantined=summary.files_quarantined,
        files_quarantined_before=summary.files_quarantined_before,
        quarantined_by_reason=quarantined_by_reason(summary.quarantined),
        occurrences=summary.occurrences,
        articles_in_run=summary.articles_in_run,
        articles_new=summary.articles_new,
        articles_total=summary.articles_total,
        near_duplicates_new=summary.near_duplicates_new,
        near_duplicates_total=summary.near_duplicates_total,
        spans=summary.spans,
        spans_by_lang=dict(summary.spans_by_lang),
        partitions_written=summary.partitions_written,
        partitions_deleted=summary.partitions_deleted,
        rolled_forward=sum(line.startswith("rolled forward") for line in summary.recovered),
    )


# ---------------------------------------------------------------------------- files


def file_stem(run_id: str) -> str:
    """A run id as a file name (Prefect's are UUIDs; anything else is made safe)."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", run_id).lstrip(".") or "_"


def record_path(run_id: str) -> str:
    return f"{RUNS_DIR}/{file_stem(run_id)}.json"


def page_path(run_id: str) -> str:
    return f"{RUNS_DIR}/{file_stem(run_id)}.html"


def write_file(data_dir: Any, rel: str, content: bytes) -> None:
    """One report file, whole or not at all (tasks/storage's write_atomic)."""

    def write(where: str | pa.NativeFile) -> None:
        if isinstance(where, str):
            Path(where).write_bytes(content)
        else:
            where.write(content)

    open_data_dir(data_dir).write_atomic(rel, write, WRITE_POINT)


def write_record(data_dir: Any, record: RunRecord) -> str:
    rel = record_path(record.run_id)
    write_file(data_dir, rel, record.to_json().encode("ascii"))
    return rel


@contextmanager
def writing(data_dir: Any, wait_seconds: float = WRITERS_WAIT_SECONDS) -> Iterator[None]:
    """One report writer at a time (a run's report, `newsflow report`): an flock on the
    local `_reports/` folder itself, released by the kernel even if the holder dies. Not
    the data folder's lock: a report never holds up a run. On an object store, nothing to
    hold: every file is one upload, and the last one wins whole."""
    store = open_data_dir(data_dir)
    if not isinstance(store, LocalDir):
        yield
        return
    folder = store.root / REPORTS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        if not flock_within(fd, wait_seconds):
            raise TimeoutError(f"another report has been writing to {folder} for {wait_seconds:.0f} s")
        yield
    finally:
        os.close(fd)  # and the lock with it


def remove_temp_files(data_dir: Any) -> list[str]:
    """Temp files of report writes cut short by a crash (`.<name>.tmp`), removed by the next
    report writer while it holds `writing()` (a run's `recover()` leaves `_reports/` alone).
    Object stores have none (one upload per file)."""
    store = open_data_dir(data_dir)
    if not isinstance(store, LocalDir) or not (store.root / REPORTS_DIR).is_dir():
        return []
    removed = []
    for leftover in sorted((store.root / REPORTS_DIR).rglob(".*.tmp")):
        leftover.unlink(missing_ok=True)
        removed.append(leftover.relative_to(store.root).as_posix())
    return removed


def remove_abandoned_temp_files(data_dir: Any) -> list[str]:
    """For a run's recovery: the temp files of a report write cut short by a crash, unless a
    report is writing right now (then they are its own, and the next writer removes any left)."""
    store = open_data_dir(data_dir)
    if not isinstance(store, LocalDir) or not (store.root / REPORTS_DIR).is_dir():
        return []
    try:
        with writing(store, wait_seconds=0):
            return remove_temp_files(store)
    except TimeoutError:
        return []


def _names(data_dir: Any, rel: str) -> list[str]:
    """File names directly in a folder of the data dir (none when it is missing)."""
    store = open_data_dir(data_dir)
    if isinstance(store, LocalDir):
        folder = store.root / rel
        return sorted(p.name for p in folder.iterdir() if p.is_file()) if folder.is_dir() else []
    selector = pafs.FileSelector(store.full(rel), recursive=False, allow_not_found=True)
    infos = store.filesystem().get_file_info(selector)  # type: ignore[union-attr]
    return sorted(i.base_name for i in infos if i.type == pafs.FileType.File)


def read_records(data_dir: Any) -> list[RunRecord]:
    """Every run's record, oldest first (files that are not records are skipped)."""
    store = open_data_dir(data_dir)
    records = []
    for name in _names(store, RUNS_DIR):
        if name.startswith(".") or not name.endswith(".json"):
            continue
        try:
            text = store.read_text(f"{RUNS_DIR}/{name}")
        except (OSError, UnicodeDecodeError):
            continue
        record = RunRecord.from_json(text)
        if record is not None:
            records.append(record)
    return sorted(records, key=lambda r: (r.started_at, r.run_id))


def prune(data_dir: Any, records: list[RunRecord], pages_kept: int, records_kept: int) -> list[str]:
    """Delete the pages of all but the newest `pages_kept` runs and the records of all but
    the newest `records_kept` (`records`: oldest first); returns what was deleted."""
    store = open_data_dir(data_dir)
    keep_pages = {file_stem(r.run_id) for r in records[-pages_kept:]} if pages_kept else set()
    keep_records = {file_stem(r.run_id) for r in records[-records_kept:]} if records_kept else set()
    deleted = []
    for name in _names(store, RUNS_DIR):
        stem, _, ext = name.rpartition(".")
        if name.startswith("."):
            continue
        if (ext == "html" and stem not in keep_pages) or (ext == "json" and stem not in keep_records):
            store.delete_file(f"{RUNS_DIR}/{name}")
            deleted.append(f"{RUNS_DIR}/{name}")
    return deleted
