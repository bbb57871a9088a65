"""flows/watch.py: real files in a real folder -> debounced, filtered burst events."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from watchfiles import Change

from flows.watch import (
    EVENT_CREATED,
    EVENT_MODIFIED,
    SeedEvent,
    SeedFilter,
    events_for,
    start_watcher,
)


def test_filter_ignores_hidden_partial_and_temporary_files(tmp_path: Path) -> None:
    keep = SeedFilter(tmp_path)
    assert keep(Change.added, str(tmp_path / "page.txt"))
    assert keep(Change.modified, str(tmp_path / "2024" / "page.txt"))
    for name in ("page.txt.part", "page.txt.tmp", "page.txt~", ".page.txt", ".quarantine/page.txt", ".git/x"):
        assert not keep(Change.added, str(tmp_path / name)), name
    assert not keep(Change.deleted, str(tmp_path / "page.txt"))
    assert not keep(Change.added, "/elsewhere/page.txt")


def test_a_burst_becomes_one_event_per_chunk_with_every_file(tmp_path: Path) -> None:
    paths = [tmp_path / f"f{i:03d}.txt" for i in range(7)]
    for p in paths:
        p.write_text("x")
    changes = {(Change.added, str(p)) for p in paths}
    events, stable = events_for(changes, tmp_path, known={"f000.txt"}, max_files=3)
    assert [len(e.files) for e in events] == [3, 3, 1]
    assert sorted(f for e in events for f in e.files) == [p.name for p in paths]
    assert all(e.event == EVENT_CREATED for e in events)
    assert len(stable) == 7
    only_known, _ = events_for({(Change.modified, str(paths[0]))}, tmp_path, known={"f000.txt"})
    assert only_known[0].event == EVENT_MODIFIED
    assert only_known[0].resource()["prefect.resource.id"] == "newsflow.seed.f000.txt"
    assert only_known[0].payload() == {"files": ["f000.txt"]}


def test_files_that_vanish_before_settling_are_dropped(tmp_path: Path) -> None:
    gone = tmp_path / "gone.txt"
    events, stable = events_for({(Change.added, str(gone))}, tmp_path, known=set())
    assert events == [] and stable == []


def test_the_watcher_turns_a_burst_of_50_files_into_a_handful_of_events(tmp_path: Path) -> None:
    received: list[SeedEvent] = []
    got_all = threading.Event()

    def emit(event: SeedEvent) -> None:
        received.append(event)
        if sum(len(e.files) for e in received) >= 50:
            got_all.set()

    thread, stop = start_watcher(tmp_path, emit=emit)
    try:
        time.sleep(0.5)  # let the OS watch be registered
        for i in range(50):
            (tmp_path / f"page_{i:02d}.txt").write_text("Title\n\nBody.\n")
        (tmp_path / "ignored.txt.part").write_text("partial")
        assert got_all.wait(timeout=30), f"only {sum(len(e.files) for e in received)} files reported"
    finally:
        stop.set()
        thread.join(timeout=10)
    files = [f for e in received for f in e.files]
    assert sorted(files) == [f"page_{i:02d}.txt" for i in range(50)]
    assert len(received) <= 3
