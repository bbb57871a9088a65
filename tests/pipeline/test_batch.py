"""Tests (and examples of use) for tasks/pipeline/batch.py's outcome counts (the batch
pipeline itself runs in tests/pipeline/test_run.py and the flow tests)."""

from __future__ import annotations

from tasks.pipeline.batch import FileOutcome, OutcomeCounts, count_outcomes
from tasks.schema import STATUS_PROCESSED, STATUS_QUARANTINED


def test_a_file_quarantined_earlier_and_unchanged_counts_as_quarantined_not_unchanged() -> None:
    outcomes = [
        FileOutcome("new.txt", STATUS_PROCESSED),
        FileOutcome("same.txt", STATUS_PROCESSED, unchanged=True),
        FileOutcome("binary.txt", STATUS_QUARANTINED, reason="binary"),
        FileOutcome("still-empty.txt", STATUS_QUARANTINED, reason="empty", unchanged=True),
        FileOutcome("other.txt", STATUS_PROCESSED),
    ]
    assert count_outcomes(outcomes) == OutcomeCounts(processed=2, unchanged=1, quarantined=2, quarantined_before=1)
    assert count_outcomes([]) == OutcomeCounts(0, 0, 0, 0)
