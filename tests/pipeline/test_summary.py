"""Tests (and examples of use) for tasks/pipeline/summary.py."""

from __future__ import annotations

from tasks.pipeline.batch import BatchResult
from tasks.pipeline.summary import batch_timeline


def test_the_batch_timeline_counts_a_worker_idle_while_the_other_runs_the_last_batch() -> None:
    def ran(start: float, end: float) -> BatchResult:
        return BatchResult(started_at=100 + start, ended_at=100 + end)

    # two workers: 0-3 and 0-2, then 3-4 and 2-6: the first worker waits from 4 to 6
    t = batch_timeline(
        [ran(0, 3), ran(0, 2), ran(3, 4), ran(2, 6)], started=99.5, submitted=99.75, collected=106.5, workers=2
    )
    assert t == {
        "batches_submitted": 0.25,
        "batches_collected": 7.0,
        "first_batch_started": 0.5,
        "last_batch_ended": 6.5,
        "worker_busy": 10.0,
        "worker_idle": 2.0,
    }
