"""What a run shows while and after it runs: progress, the per-file table, the summary.

Progress goes to a Prefect progress artifact (updated in place) and to the terminal: a live
bar when stdout is a terminal, a log line per finished task run otherwise. The summary is
rendered by flows/summary.py, the same text the CLI prints.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable

from prefect import get_run_logger
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)

from flows import defaults as d
from flows.summary import ARTIFACT_FILE_ROWS, render_markdown
from tasks.pipeline.batch import FileOutcome
from tasks.pipeline.planning import WorkPlan
from tasks.pipeline.summary import RunSummary
from tasks.schema import STATUS_QUARANTINED


class RunProgress:
    """Files and bytes done, batches, rate and ETA of a run's batch phase: the terminal's
    bar moves as each batch ends, the log line and the Prefect artifact as each task run ends."""

    active: RunProgress | None = None  # the batch phase under way in this process, if any

    def __init__(self, plan: WorkPlan, n_files: int) -> None:
        self.plan, self.n_files = plan, n_files
        self.total = sum(plan.batch_sizes)
        self.done_bytes = self.done_batches = self.done_files = 0
        self.started = time.monotonic()
        self.lock = threading.Lock()  # batches end on the pool's thread, task runs on the flow's
        self.artifact = create_progress_artifact(
            0.0, key="ingest-progress", description="Share of this run's input bytes processed"
        )
        self.bar = _TerminalBar(self.total, n_files) if sys.stdout.isatty() and self.plan.tasks else None
        RunProgress.active = self

    def batch_done(self, batch_no: int) -> None:
        with self.lock:
            self.done_batches += 1
            self.done_files += len(self.plan.batches[batch_no])
            self.done_bytes += self.plan.batch_sizes[batch_no]
            if self.bar is not None:
                self.bar.update(self.done_bytes, self.done_files)

    def task_done(self, task_no: int) -> None:
        with self.lock:
            share = 100.0 * self.done_bytes / self.total if self.total else 100.0
        update_progress_artifact(self.artifact, share)
        if self.bar is None:
            get_run_logger().info("progress: %s", self.line())

    def line(self) -> str:
        """`120/762 files, 1.6/10.0 MB, 1/2 batches, 1.1 MB/s, ETA 8 s`."""
        seconds = max(time.monotonic() - self.started, 1e-6)
        rate = self.done_bytes / seconds
        eta = (self.total - self.done_bytes) / rate if rate else 0.0
        return (
            f"{self.done_files}/{self.n_files} files, {self.done_bytes / d.MB:.1f}/{self.total / d.MB:.1f} MB, "
            f"{self.done_batches}/{len(self.plan.batches)} batches, {rate / d.MB:.1f} MB/s, ETA {eta:.0f} s"
        )

    def finish(self) -> None:
        RunProgress.active = None
        if not self.plan.tasks:
            update_progress_artifact(self.artifact, 100.0)
        if self.bar is not None:
            self.bar.close()


def batch_progress() -> Callable[[int], None] | None:
    """What a batch task of this process calls as each of its batches ends (None when no
    local batch phase is under way: on a Dask worker)."""
    progress = RunProgress.active
    return progress.batch_done if progress is not None else None


class _TerminalBar:
    """A rich progress bar on the terminal (bytes, files, rate, ETA)."""

    def __init__(self, total_bytes: int, n_files: int) -> None:
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self.progress = Progress(
            TextColumn("ingest"),
            BarColumn(),
            DownloadColumn(binary_units=True),
            TransferSpeedColumn(),
            TextColumn("{task.fields[files]}/" + str(n_files) + " files"),
            TimeRemainingColumn(),
            transient=False,
        )
        self.task = self.progress.add_task("ingest", total=total_bytes, files=0)
        self.progress.start()

    def update(self, done_bytes: int, done_files: int) -> None:
        self.progress.update(self.task, completed=done_bytes, files=done_files)

    def close(self) -> None:
        self.progress.stop()


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
    """The run's table of files and its summary, attached to the flow run (from the flow
    itself: a task run of its own cost more than the two API calls)."""
    rows = file_table_rows(summary.outcomes)
    n = len(summary.outcomes)
    more = f" ({len(rows)} of {n}, quarantined first; every file is in data/files/)" if len(rows) < n else ""
    create_table_artifact(
        key="ingest-files", table=rows, description=f"The input files of this run and what happened to each{more}"
    )
    create_markdown_artifact(
        key="ingest-summary", markdown=render_markdown(summary.as_dict()), description="newsflow run summary"
    )
