"""Tests (and examples of use) for tasks/process/flock.py: one exclusive holder at a time."""

from __future__ import annotations

import os
from pathlib import Path

from tasks.process.flock import flock_within


def _open(path: Path) -> int:
    return os.open(path, os.O_RDONLY | os.O_DIRECTORY)


def test_a_free_lock_is_taken_and_a_held_one_is_waited_for_then_refused(tmp_path: Path) -> None:
    holder, other = _open(tmp_path), _open(tmp_path)  # two open files: two flock owners
    try:
        busy: list[int] = []
        assert flock_within(holder, 0)
        assert not flock_within(other, 0.3, poll_seconds=0.05, on_busy=lambda: busy.append(1))
        assert busy == [1]  # said once, however many tries
        os.close(holder)  # closing releases it
        holder = -1
        assert flock_within(other, 0, on_busy=lambda: busy.append(2))
        assert busy == [1]
    finally:
        for fd in (holder, other):
            if fd >= 0:
                os.close(fd)
