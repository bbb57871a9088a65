"""Waiting for an exclusive `flock`, the one primitive behind every lock of newsflow: the
data folder's (tasks/storage/lock.py), the report writers' (tasks/report/history.py) and the
local Prefect server's start (flows/server.py). The kernel releases a flock when its holder
dies, even on kill -9, so none of them can be left stale."""

from __future__ import annotations

import fcntl
import time
from collections.abc import Callable


def flock_within(
    fd: int, wait_seconds: float, poll_seconds: float = 0.1, on_busy: Callable[[], None] | None = None
) -> bool:
    """Take an exclusive flock on `fd`, trying until `wait_seconds` have passed (at least
    once); False when it stayed held. `on_busy` is called once, when the lock is first found
    held by another."""
    deadline = time.monotonic() + wait_seconds
    busy_seen = False
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if not busy_seen:
                busy_seen = True
                if on_busy is not None:
                    on_busy()
            if time.monotonic() >= deadline:
                return False
            time.sleep(poll_seconds)
