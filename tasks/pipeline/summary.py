"""What a run did: its counts, its step times and its timeline (pure data, no rendering).

`RunSummary` is filled by the global steps (tasks/pipeline/run.py::finish_run) and the
flow; flows/summary.py renders it for the terminal and the Prefect UI from one source.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from tasks.pipeline.batch import BatchResult, FileOutcome


@dataclass
class RunSummary:
    """Counts of this run, and of the datasets after it where the name says `total`."""

    run_id: str
    files_seen: int = 0
    files_processed: int = 0
    files_quarantined: int = 0  # this run's, and those quarantined earlier and unchanged since
    files_quarantined_before: int = 0  # of them, quarantined by an earlier run (the same bytes)
    files_unchanged: int = 0  # processed by an earlier run, the same bytes: skipped
    occurrences: int = 0
    articles_in_run: int = 0
    articles_new: int = 0
    articles_already_seen: int = 0
    articles_total: int = 0
    near_duplicates_new: int = 0  # links this run added
    near_duplicates_total: int = 0  # links in the duplicates dataset after the run
    spans: int = 0
    spans_by_lang: dict[str, int] = field(default_factory=dict)
    # the run's first untranslated spans (by file and offset): source_file, text, lang, gloss
    span_examples: list[dict[str, str | None]] = field(default_factory=list)
    quarantined: dict[str, str] = field(default_factory=dict)  # file -> reason
    recovered: list[str] = field(default_factory=list)  # what recovery did at the start
    resigned: int = 0  # stored articles signed again (their index rows were missing)
    partitions_written: int = 0
    partitions_deleted: int = 0
    # Wall time of each step, summed over batches; the global steps dedup and write overlap
    # (tasks/pipeline/run.py::deduplicate_stage_and_commit), so their sum can be more than
    # global_steps_seconds.
    step_seconds: dict[str, float] = field(default_factory=dict)
    # Wall and CPU time (every thread of the flow process) of the global steps, from the
    # batches' results to the commit.
    global_steps_seconds: float = 0.0
    global_steps_cpu_seconds: float = 0.0
    wall_seconds: float = 0.0  # the whole flow, Prefect included
    # Where the wall time went, in seconds from the flow's start (see `batch_timeline`).
    timeline: dict[str, float] = field(default_factory=dict)
    # Every file's outcome: for the artifacts, not part of as_dict (the manifest has them).
    outcomes: list[FileOutcome] = field(default_factory=list, repr=False)

    def as_dict(self) -> dict:
        """The summary as plain data (what the flow returns), without the per-file outcomes."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "outcomes"}


def batch_timeline(
    results: list[BatchResult], started: float, submitted: float, collected: float, workers: int
) -> dict[str, float]:
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
