"""Tests (and examples of use) for tasks/storage/lock.py: one writer per data folder; the lock
dies with its holder and leaves nothing behind."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tasks.storage.lock import DataDirBusy, data_dir_lock, lock_path


def test_a_second_holder_is_refused_with_the_holders_pid(tmp_path: Path) -> None:
    with data_dir_lock(tmp_path), pytest.raises(DataDirBusy) as info, data_dir_lock(tmp_path, wait_seconds=0):
        pass
    assert f"pid {os.getpid()}" in str(info.value)
    assert "this run did nothing" in str(info.value)


def test_waiting_gives_up_after_the_deadline(tmp_path: Path) -> None:
    with data_dir_lock(tmp_path):
        started = time.monotonic()
        with pytest.raises(DataDirBusy), data_dir_lock(tmp_path, wait_seconds=0.5):
            pass
        assert 0.5 <= time.monotonic() - started < 5


def test_the_lock_is_free_again_after_release(tmp_path: Path) -> None:
    with data_dir_lock(tmp_path):
        pass
    with data_dir_lock(tmp_path, wait_seconds=0):
        pass


def test_a_killed_holder_leaves_no_stale_lock(tmp_path: Path) -> None:
    code = f"from pathlib import Path; from tasks.storage.lock import data_dir_lock\nwith data_dir_lock(Path({str(tmp_path)!r})):\n    print('held', flush=True)\n    import time; time.sleep(60)"
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "held"
        with pytest.raises(DataDirBusy), data_dir_lock(tmp_path):
            pass
        child.kill()
        child.wait(timeout=10)
        with data_dir_lock(tmp_path, wait_seconds=0):  # the kernel released it
            pass
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def test_locking_writes_nothing_into_the_data_folder(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with data_dir_lock(data):  # a missing folder is made (the first run's)
        pass
    (data / "kept.parquet").write_bytes(b"x")
    before = {p.name: p.stat().st_mtime_ns for p in [data, *data.iterdir()]}
    time.sleep(0.01)
    with data_dir_lock(data):
        pass
    assert {p.name: p.stat().st_mtime_ns for p in [data, *data.iterdir()]} == before


def test_a_planted_symlink_lock_file_is_not_followed(tmp_path: Path, memory_uri: str) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    path = lock_path(memory_uri)
    path.parent.mkdir(parents=True)
    path.symlink_to(victim)
    with pytest.raises(OSError), data_dir_lock(memory_uri):
        pass
    assert victim.read_text() == "precious"


def test_a_uri_data_dir_is_locked_by_a_host_local_file_keyed_by_the_uri(tmp_path: Path, memory_uri: str) -> None:
    # Object stores have no flock: one host's runs are serialised through its cache folder.
    path = lock_path(memory_uri)
    assert path.parent == tmp_path / "cache" / "locks"
    assert lock_path(memory_uri) == path and lock_path(memory_uri + "-other") != path
    with data_dir_lock(memory_uri), pytest.raises(DataDirBusy, match=memory_uri), data_dir_lock(memory_uri):
        pass
    with data_dir_lock(memory_uri):  # released
        pass


def test_a_file_uri_locks_the_local_folder_itself(tmp_path: Path) -> None:
    assert lock_path(f"file://{tmp_path}/data") == tmp_path / "data"
    with data_dir_lock(tmp_path / "data"), pytest.raises(DataDirBusy), data_dir_lock(f"file://{tmp_path}/data"):
        pass
