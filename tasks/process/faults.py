"""Named points where the fault-injection suite kills or pauses the process (tests/faults).

`fault_point("stage:articles")` does nothing unless one of these is set:

- `NEWSFLOW_KILL_AT=<name>:<n>` sends SIGKILL to this process the n-th time it reaches a
  checkpoint named `<name>` (`apply:3`). `<name>` may itself hold a colon:
  `stage:3` matches any `stage:<dataset>`, `stage:files:1` only that one. It is the honest
  way to crash at an exact point: a real `kill -9`, no exception handlers, no cleanup.
- `NEWSFLOW_PAUSE_AT=<name>:<n>` with `NEWSFLOW_PAUSE_FILE=<path>`: the n-th time, create
  `<path>.reached` (holding the pid) and wait until `<path>` exists (at most
  `NEWSFLOW_PAUSE_TIMEOUT` seconds, default 300), then go on. Lets a test act on the
  world at an exact point (truncate a file mid-read, start a competing run).
- `NEWSFLOW_CHECKPOINT_LOG=<path>`: append `<pid> <name>` for every checkpoint reached
  (one `O_APPEND` write per line, so several processes can share the log).

Checkpoint names in use: `read:<source_file>` (per file: opened, not yet read;
steps/load.py), `decode` (per file; pipeline/batch.py), `stage:<dataset>` (pipeline/run.py),
`stage-partition` (per staged partition file, on one of staging's writer threads: the n-th
may be a different partition from run to run; storage/commit.py), `parquet-written` (temp
file written, before its rename; storage/parquet.py; on an object store: before the upload),
`commit` (pipeline/run.py), `commit-record` (before COMMIT.json is renamed in, or uploaded;
storage/commit.py), `apply-delete`, `apply` (before each staged file is moved into place),
`apply-cleanup` (before the staging folder is removed; all storage/commit.py), `lock-busy`
(the lock is held by another run), `locked` (lock acquired), `unlocking` (about to release
it; all storage/lock.py), `report-written` (before a report file is renamed in;
report/history.py).

Costs one string test when nothing is set.
"""

from __future__ import annotations

import os
import signal
import threading
import time


def _parse(target: str) -> tuple[str, int]:
    """`name:n` -> (name, n); a target without a trailing count means n = 1."""
    name, sep, nth = target.rpartition(":")
    if sep and nth.isdigit():
        return name, int(nth)
    return target, 1


_KILL = _parse(os.environ["NEWSFLOW_KILL_AT"]) if os.environ.get("NEWSFLOW_KILL_AT") else None
_PAUSE = _parse(os.environ["NEWSFLOW_PAUSE_AT"]) if os.environ.get("NEWSFLOW_PAUSE_AT") else None
_PAUSE_FILE = os.environ.get("NEWSFLOW_PAUSE_FILE", "")
_PAUSE_TIMEOUT = float(os.environ.get("NEWSFLOW_PAUSE_TIMEOUT", "300"))
_LOG = os.environ.get("NEWSFLOW_CHECKPOINT_LOG", "")
_ACTIVE = bool(_KILL or _PAUSE or _LOG)
_COUNTS: dict[str, int] = {}
_COUNTS_LOCK = threading.Lock()  # batch tasks may run on several threads (workers=1)


def _matches(name: str, target: str) -> bool:
    # "stage:articles" matches target "stage" (any dataset) and "stage:articles"
    return name == target or name.split(":", 1)[0] == target


def _hit(name: str, target: tuple[str, int] | None, counter: str) -> bool:
    if target is None or not _matches(name, target[0]):
        return False
    with _COUNTS_LOCK:
        _COUNTS[counter] = _COUNTS.get(counter, 0) + 1
        return _COUNTS[counter] == target[1]


def _log(name: str) -> None:
    fd = os.open(_LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{os.getpid()} {name}\n".encode())
    finally:
        os.close(fd)


def _pause() -> None:
    with open(_PAUSE_FILE + ".reached", "w") as fh:
        fh.write(str(os.getpid()))
    deadline = time.monotonic() + _PAUSE_TIMEOUT
    while not os.path.exists(_PAUSE_FILE) and time.monotonic() < deadline:
        time.sleep(0.02)


def fault_point(name: str) -> None:
    if not _ACTIVE:
        return
    if _LOG:
        _log(name)
    if _hit(name, _PAUSE, "pause") and _PAUSE_FILE:
        _pause()
    if _hit(name, _KILL, "kill"):
        os.kill(os.getpid(), signal.SIGKILL)
