"""Tests (and examples of use) for flows/artifacts.py (what a run shows in the Prefect UI)."""

from __future__ import annotations

from flows.artifacts import file_table_rows
from tasks.pipeline.batch import FileOutcome
from tasks.schema import STATUS_PROCESSED, STATUS_QUARANTINED


def test_file_table_artifact_is_bounded_and_shows_quarantined_files_first() -> None:
    outcomes = [FileOutcome(f"p{i:05d}.txt", STATUS_PROCESSED, "ab", 10, "utf-8", None, 2) for i in range(2500)]
    outcomes.insert(1234, FileOutcome("zz-bad.txt", STATUS_QUARANTINED, None, 0, None, "empty file"))
    rows = file_table_rows(outcomes, limit=100)
    assert len(rows) == 100  # a 79,308-file backfill must not become a 79,308-row UI table
    assert rows[0] == {
        "file": "zz-bad.txt",
        "status": STATUS_QUARANTINED,
        "articles": 0,
        "bytes": 0,
        "encoding": "",
        "reason": "empty file",
    }
    assert [r["file"] for r in rows[1:3]] == ["p00000.txt", "p00001.txt"]
    assert len(file_table_rows(outcomes[:7])) == 7  # small runs: every file
