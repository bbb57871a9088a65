"""The seeds-folder watcher: file-system changes -> debounced Prefect events.

watchfiles (Rust `notify`) already groups a burst of changes into one set (its
`debounce`); on top of that the watcher

1. drops hidden, temporary and partial names (`.part`, `.tmp`, `~`, dotfiles) and folders,
2. waits until every remaining file's size has stopped changing (a copy in progress is
   not ingested half-written),
3. emits ONE event per burst (chunks of at most `MAX_FILES_PER_EVENT` files):
   `newsflow.seed.created` (or `.modified` when every file was already known), whose
   resource is the first file (`prefect.resource.id = newsflow.seed.<path>`) and whose
   payload lists all the burst's files. The `ingest/on-file` deployment trigger turns
   each event into one flow run, so 500 files dropped at once make a handful of runs.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from watchfiles import Change, DefaultFilter, watch

from tasks.pipeline.planning import is_ignored_name

EVENT_CREATED = "newsflow.seed.created"
EVENT_MODIFIED = "newsflow.seed.modified"
RESOURCE_PREFIX = "newsflow.seed."
MAX_FILES_PER_EVENT = 250

log = logging.getLogger("newsflow.watch")


@dataclass(frozen=True)
class SeedEvent:
    event: str
    files: list[str]  # relative to the seeds folder, sorted

    def resource(self) -> dict[str, str]:
        first = self.files[0]
        return {
            "prefect.resource.id": f"{RESOURCE_PREFIX}{first}",
            "prefect.resource.name": first,
            "newsflow.path": first,
            "newsflow.file-count": str(len(self.files)),
        }

    def payload(self) -> dict[str, object]:
        return {"files": self.files}


class SeedFilter(DefaultFilter):
    """watchfiles' default ignores plus ours, applied to every path component."""

    def __init__(self, root: Path) -> None:
        super().__init__()
        self.root = root

    def __call__(self, change: Change, path: str) -> bool:
        if change == Change.deleted or not super().__call__(change, path):
            return False
        try:
            rel = Path(path).relative_to(self.root)
        except ValueError:
            return False
        return not any(is_ignored_name(part) for part in rel.parts)


def wait_until_stable(paths: Iterable[Path], settle_seconds: float = 0.5, timeout: float = 60.0) -> list[Path]:
    """Paths whose size stayed the same over `settle_seconds` (vanished ones are dropped)."""

    def sizes() -> dict[Path, int]:
        out = {}
        for p in paths:
            try:
                if p.is_file() and not p.is_symlink():
                    out[p] = p.stat().st_size
            except OSError:
                pass
        return out

    paths = list(paths)
    deadline = time.monotonic() + timeout
    before = sizes()
    while True:
        time.sleep(settle_seconds)
        after = sizes()
        if after == before or time.monotonic() > deadline:
            return sorted(after)
        before = after


def events_for(
    changes: set[tuple[Change, str]], root: Path, known: set[str], max_files: int = MAX_FILES_PER_EVENT
) -> tuple[list[SeedEvent], list[Path]]:
    """Group one debounced burst into events; returns (events, files to check for stability)."""
    paths = sorted({Path(p) for _, p in changes})
    stable = wait_until_stable(paths)
    rels = [p.relative_to(root).as_posix() for p in stable]
    events = []
    for i in range(0, len(rels), max_files):
        chunk = rels[i : i + max_files]
        kind = EVENT_MODIFIED if all(r in known for r in chunk) else EVENT_CREATED
        events.append(SeedEvent(kind, chunk))
    return events, stable


def watch_seeds(
    seeds_dir: Path,
    emit: Callable[[SeedEvent], None],
    stop: threading.Event,
    debounce_ms: int = 1600,
) -> None:
    """Block, turning bursts of changes under `seeds_dir` into events, until `stop` is set."""
    root = seeds_dir.resolve()
    known = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}
    seed_filter = SeedFilter(root)
    for changes in watch(root, watch_filter=seed_filter, debounce=debounce_ms, stop_event=stop, raise_interrupt=False):
        events, stable = events_for(changes, root, known)
        for event in events:
            log.info("%s: %d file(s), first %s", event.event, len(event.files), event.files[0])
            emit(event)
        known.update(p.relative_to(root).as_posix() for p in stable)


def emit_prefect_event(event: SeedEvent) -> None:
    from prefect.events import emit_event

    emit_event(event=event.event, resource=event.resource(), payload=event.payload())


def start_watcher(
    seeds_dir: Path, emit: Callable[[SeedEvent], None] = emit_prefect_event
) -> tuple[threading.Thread, threading.Event]:
    stop = threading.Event()
    thread = threading.Thread(target=watch_seeds, args=(seeds_dir, emit, stop), name="newsflow-watcher", daemon=True)
    thread.start()
    return thread, stop
