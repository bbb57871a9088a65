"""An exclusive lock on a data directory, so two runs never write the same datasets.

A local data dir is locked by `flock` on the folder itself: nothing is written into it (a
run over unchanged input leaves every file and its modification time as it was), and the
kernel releases the lock when the holder dies, even on kill -9, so a crashed run never
leaves a stale lock behind. Who holds it is read from /proc/locks.

A data dir on an object store (`s3://...`) has no flock: the lock is then a local file
keyed by the URI (`<cache>/locks/<sha256 of the URI>.lock`, see tasks/storage/stores.py),
holding the holder's pid, which serialises the runs of ONE host only. Writers on several
hosts need an external lock.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from tasks.errors import DataDirBusy
from tasks.process.faults import fault_point
from tasks.process.flock import flock_within
from tasks.storage.location import cache_dir, uri_key
from tasks.storage.stores import DataDirLike, LocalDir, open_data_dir


def lock_path(data_dir: DataDirLike) -> Path:
    """What is locked: a local data dir itself, or a file in this host's cache for a URI."""
    store = open_data_dir(data_dir)
    if isinstance(store, LocalDir):
        return store.root
    return cache_dir() / "locks" / f"{uri_key(store.uri)}.lock"


def _open(path: Path, is_folder: bool) -> int:
    """A file descriptor to flock: the folder (made if missing), or the lock file, opened
    without following a planted symbolic link."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if is_folder:
        path.mkdir(exist_ok=True)
        return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)


def _holder(fd: int, is_folder: bool) -> str:
    """The pid of the process holding the lock on fd's file, or "unknown"."""
    if not is_folder:
        return os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
    st = os.fstat(fd)
    key = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    try:
        with open("/proc/locks") as locks:  # "1: FLOCK  ADVISORY  WRITE <pid> <maj:min:inode> 0 EOF"
            for line in locks:
                parts = line.split()
                if len(parts) > 5 and parts[1] == "FLOCK" and parts[5] == key:
                    return parts[4]
    except OSError:
        pass
    return "unknown"


@contextmanager
def data_dir_lock(
    data_dir: DataDirLike, wait_seconds: float = 0.0, on_wait: Callable[[], None] | None = None
) -> Iterator[None]:
    """Hold the data dir's lock, waiting up to `wait_seconds` for another run to release it
    (`on_wait` is called once when that wait begins); DataDirBusy if it is still held then."""
    store = open_data_dir(data_dir)
    is_folder = isinstance(store, LocalDir)
    fd = _open(lock_path(store), is_folder)
    locked = False

    def busy() -> None:
        fault_point("lock-busy")
        if on_wait is not None and wait_seconds > 0:
            on_wait()

    try:
        if not flock_within(fd, wait_seconds, poll_seconds=0.2, on_busy=busy):
            raise DataDirBusy(
                f"another newsflow run (pid {_holder(fd, is_folder)}) is writing to {store.uri}; "
                f"waited {wait_seconds:.0f}s — this run did nothing, try again when it has finished"
            )
        if not is_folder:
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(os.getpid()).encode(), 0)
        locked = True
        fault_point("locked")
        yield
    finally:
        if locked:
            fault_point("unlocking")
        os.close(fd)  # closing releases the flock
