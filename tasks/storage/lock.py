"""An exclusive lock on a data directory, so two runs never write the same datasets.

`fcntl.flock` is released by the kernel when the holder dies (even on kill -9), so a
crashed run never leaves a stale lock behind.

A data dir on an object store (`s3://...`) has no flock: the lock is then a local file
keyed by the URI (`<cache>/locks/<sha256 of the URI>.lock`, see tasks/storage.py), which
serialises the runs of ONE host only. Writers on several hosts need an external lock.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tasks.process.faults import fault_point
from tasks.storage.stores import DataDirLike, LocalDir, cache_dir, open_data_dir, uri_key

LOCK_FILE = ".newsflow.lock"


class DataDirBusy(RuntimeError):
    """Another run holds the lock on the data directory."""


def lock_path(data_dir: DataDirLike) -> Path:
    """The lock file of a data dir: inside it when local, in this host's cache otherwise."""
    store = open_data_dir(data_dir)
    if isinstance(store, LocalDir):
        store.root.mkdir(parents=True, exist_ok=True)
        return store.root / LOCK_FILE
    folder = cache_dir() / "locks"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{uri_key(store.uri)}.lock"


@contextmanager
def data_dir_lock(data_dir: DataDirLike, wait_seconds: float = 0.0) -> Iterator[None]:
    path = lock_path(data_dir)
    where = open_data_dir(data_dir).uri
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)  # never through a planted link
    deadline = time.monotonic() + wait_seconds
    busy_seen = locked = False
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not busy_seen:
                    busy_seen = True
                    fault_point("lock-busy")
                if time.monotonic() >= deadline:
                    holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
                    raise DataDirBusy(
                        f"another newsflow run (pid {holder}) is writing to {where}; "
                        f"waited {wait_seconds:.0f}s — this run did nothing, try again when it has finished"
                    ) from None
                time.sleep(0.2)
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        locked = True
        fault_point("locked")
        yield
    finally:
        if locked:
            fault_point("unlocking")
        os.close(fd)  # closing releases the flock
