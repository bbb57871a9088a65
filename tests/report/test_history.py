"""tasks/report/history.py: one JSON record per run, written whole, read back tolerantly,
pruned oldest first; on a local folder and on an object store (fsspec memory)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tasks.pipeline.batch import FileOutcome
from tasks.pipeline.summary import RunSummary
from tasks.report import history
from tasks.storage.commit import recover
from tasks.storage.stores import open_data_dir

START = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


def record(n: int, **kw: object) -> history.RunRecord:
    values: dict = {"run_id": f"run-{n:03d}", "started_at": (START + timedelta(minutes=n)).isoformat()}
    return history.RunRecord(**(values | kw))


def test_a_record_is_made_from_the_run_summary() -> None:
    outcomes = [
        FileOutcome("a.txt", "processed", "x", 100),
        FileOutcome("b.txt", "processed", "y", 50, unchanged=True),
        FileOutcome("c.txt", "quarantined", None, 0, reason="'c.txt': the file is empty (0 bytes); nothing"),
    ]
    summary = RunSummary(
        run_id="r1",
        files_seen=3,
        files_processed=1,
        files_unchanged=1,
        files_quarantined=1,
        quarantined={"c.txt": "'c.txt': the file is empty (0 bytes); nothing"},
        step_seconds={"load": 0.5},
        partitions_written=4,
        timeline={"committed": 2.0},
        outcomes=outcomes,
    )
    r = history.record_for(summary, START, "ingest-x")
    assert (r.bytes_seen, r.bytes_read, r.seconds_to_commit) == (150, 100, 2.0)
    assert r.quarantined_by_reason == {"the file is empty": 1}
    assert r.started_at == "2026-03-01T08:00:00+00:00" and r.changed_datasets
    assert r.mb_per_s == pytest.approx(150 / (1 << 20) / 2.0) and r.files_per_s == 1.5
    # a run that changed nothing itself, but whose recovery finished an earlier committed run
    summary.partitions_written, summary.recovered = 0, ["rolled forward committed run r0"]
    assert history.record_for(summary, START).changed_datasets
    summary.recovered = ["discarded interrupted run r0"]
    assert not history.record_for(summary, START).changed_datasets


def test_a_record_reads_back_and_tolerates_a_grown_or_broken_format() -> None:
    r = record(1, step_seconds={"load": 1.25}, spans_by_lang={"ja": 2}, files_seen=7)
    assert history.RunRecord.from_json(r.to_json()) == r
    grown = json.loads(r.to_json()) | {"a_new_field": [1, 2]}
    del grown["spans"]
    assert history.RunRecord.from_json(json.dumps(grown)) == r  # unknown ignored, missing defaulted
    for broken in ("not json", "[]", '{"started_at": "x"}', json.dumps(json.loads(r.to_json()) | {"files_seen": "7"})):
        assert history.RunRecord.from_json(broken) is None


@pytest.mark.parametrize(
    ("source_file", "reason", "category"),
    [
        ("a.txt", "'a.txt': no body: the page holds only its title line ('X') — it looks cut off", "no body"),
        ("b.txt", "'b.txt': binary data: the file is a PNG image, not text — remove it", "binary data"),
        ("c.txt", "'c.txt': the file is empty (0 bytes); nothing to ingest", "the file is empty"),
        ("it's.txt", '"it\'s.txt": undecodable: byte 12 is not valid UTF-8', "undecodable"),
        ("d:e.txt", "'d:e.txt': too large: 1,000 bytes", "too large"),
        ("f.txt", "'f.txt': starts with a utf-16 byte-order mark but byte 7 is not valid utf-16; re-export", None),
        ("g.txt", None, "no reason given"),
    ],
)
def test_quarantine_reasons_are_grouped_by_their_words(
    source_file: str, reason: str | None, category: str | None
) -> None:
    expected = category or "starts with a utf-N byte-order mark but byte N is not valid"  # 60 characters at most
    assert history.reason_category(source_file, reason) == expected


def test_records_are_one_file_each_and_read_oldest_first(tmp_path: Path) -> None:
    for n in (3, 1, 2):
        history.write_record(tmp_path, record(n))
    runs = tmp_path / "_reports" / "runs"
    assert sorted(p.name for p in runs.iterdir()) == ["run-001.json", "run-002.json", "run-003.json"]
    (runs / "junk.json").write_text("{not a record")
    (runs / ".run-004.json.tmp").write_text(record(4).to_json())  # a write cut short
    assert [r.run_id for r in history.read_records(tmp_path)] == ["run-001", "run-002", "run-003"]


def test_pruning_keeps_the_newest_pages_and_records(tmp_path: Path) -> None:
    records = [record(n) for n in range(6)]
    for r in records:
        history.write_record(tmp_path, r)
        history.write_file(tmp_path, history.page_path(r.run_id), b"<html>")
    deleted = history.prune(tmp_path, history.read_records(tmp_path), pages_kept=2, records_kept=4)
    left = sorted(p.name for p in (tmp_path / "_reports" / "runs").iterdir())
    assert left == ["run-002.json", "run-003.json", "run-004.html", "run-004.json", "run-005.html", "run-005.json"]
    assert len(deleted) == 6


def test_on_an_object_store_records_are_written_read_and_pruned(memory_uri: str) -> None:
    for n in range(3):
        history.write_record(memory_uri, record(n))
        history.write_file(memory_uri, history.page_path(record(n).run_id), b"<html>")
    assert [r.run_id for r in history.read_records(memory_uri)] == ["run-000", "run-001", "run-002"]
    history.prune(memory_uri, history.read_records(memory_uri), pages_kept=1, records_kept=2)
    store = open_data_dir(memory_uri)
    assert [r.run_id for r in history.read_records(memory_uri)] == ["run-001", "run-002"]
    assert not store.exists(history.page_path("run-001")) and store.exists(history.page_path("run-002"))


def test_a_crash_while_writing_leaves_a_temp_file_that_is_removed_before_the_next_write(tmp_path: Path) -> None:
    """A real kill -9 at the moment before the rename (tasks/process/faults.py)."""
    code = (
        "import sys; from tasks.report import history; "
        "history.write_file(sys.argv[1], history.LATEST_PAGE, b'<html>new</html>')"
    )
    data = tmp_path / "data"
    history.write_file(data, history.LATEST_PAGE, b"<html>old</html>")
    env = dict(os.environ, NEWSFLOW_KILL_AT=f"{history.WRITE_POINT}:1")
    proc = subprocess.run([sys.executable, "-c", code, str(data)], env=env, capture_output=True)
    assert proc.returncode == -9
    assert (data / "_reports" / "latest.html").read_bytes() == b"<html>old</html>"  # never half written
    assert [p.name for p in (data / "_reports").iterdir() if p.name.endswith(".tmp")] == [".latest.html.tmp"]
    assert history.remove_temp_files(data) == ["_reports/.latest.html.tmp"]
    assert sorted(p.name for p in (data / "_reports").iterdir()) == ["latest.html"]
    # a run's recovery leaves it to the report writers: it may be a report's write in progress
    (data / "_staging" / "run-x").mkdir(parents=True)
    (data / "_reports" / "runs").mkdir()
    (data / "_reports" / "runs" / ".run-x.json.tmp").write_text("{")
    (data / "articles").mkdir()
    (data / "articles" / ".part-0.parquet.tmp").write_text("cut short")
    done = recover(data)
    assert "removed temporary file articles/.part-0.parquet.tmp" in done
    assert not any("_reports" in line for line in done)
    # ... which a run removes only when no report holds the writers' lock
    with history.writing(data):
        assert history.remove_abandoned_temp_files(data) == []
    assert history.remove_abandoned_temp_files(data) == ["_reports/runs/.run-x.json.tmp"]


def test_one_report_writer_at_a_time(tmp_path: Path) -> None:
    """A second writer waits for the first (an flock on _reports/, not on the data folder)."""
    with history.writing(tmp_path), pytest.raises(TimeoutError, match="another report"):
        with history.writing(tmp_path, wait_seconds=0.3):
            pass
    with history.writing(tmp_path, wait_seconds=0.3):
        pass  # free again once the first is done
    with history.writing("memory://newsflow-test-no-lock/data"):
        pass  # an object store: nothing to hold
