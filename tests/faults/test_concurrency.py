"""Concurrency: two real `newsflow run` processes against the same data folder never
interleave their writes. Run A is paused inside the lock (at the `commit` checkpoint,
everything staged); run B either gives up at once with status 3 and a clear message
(`--lock-wait 0`), or waits (`--lock-wait 120`) and only starts after A released the lock.
Which checkpoints each process reached, in which order, comes from a shared
NEWSFLOW_CHECKPOINT_LOG, not from timing."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.faults.harness import (
    WORK_CHECKPOINTS,
    child_env,
    copy_seeds,
    finish,
    leftovers,
    snapshot,
    start,
    wait_for_line,
    wait_for_path,
)

pytestmark = [pytest.mark.faults, pytest.mark.timeout(600)]

# checkpoints that only happen while a run holds the lock
INSIDE_LOCK = ("locked", *WORK_CHECKPOINTS, "unlocking")


def _tree_state(data: Path) -> dict[str, int]:
    return {p.relative_to(data).as_posix(): p.stat().st_mtime_ns for p in data.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def contended(suite_env, tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("concurrency")
    seeds, data, logs, log = root / "seeds", root / "data", root / "logs", root / "checkpoints.log"
    copy_seeds(seeds)
    args = ["run", "--seeds", str(seeds), "--data", str(data)]
    pause = root / "release-a"
    a = start(
        args,
        child_env(
            suite_env, NEWSFLOW_PAUSE_AT="commit", NEWSFLOW_PAUSE_FILE=str(pause), NEWSFLOW_CHECKPOINT_LOG=str(log)
        ),
        logs,
        "a",
    )
    b_wait = None
    try:
        wait_for_path(Path(f"{pause}.reached"), 240, a, "run A reaching its commit while holding the lock")
        before = _tree_state(data)
        # B1: no waiting -> status 3, nothing written
        b_now = finish(start([*args, "--lock-wait", "0"], child_env(suite_env), logs, "b-now"), timeout=240)
        during = _tree_state(data)
        # B2: waits for the lock; proven to be waiting by its `lock-busy` checkpoint
        b_wait = start(
            [*args, "--lock-wait", "120"], child_env(suite_env, NEWSFLOW_CHECKPOINT_LOG=str(log)), logs, "b-wait"
        )
        wait_for_line(log, lambda line: line == f"{b_wait.pid} lock-busy", 240, b_wait, "run B waiting for the lock")
        pause.touch()
        a_run = finish(a, timeout=240)
        b_wait_run = finish(b_wait, timeout=240)
    finally:
        pause.touch()
        if a.returncode is None:
            finish(a, timeout=60)
        if b_wait is not None and b_wait.returncode is None:
            finish(b_wait, timeout=60)
    events = [
        (int(pid), name.split(":", 1)[0]) for pid, name in (line.split(" ", 1) for line in log.read_text().splitlines())
    ]
    return data, a_run, b_now, b_wait_run, before, during, events


def test_a_second_run_without_waiting_exits_3_with_a_clear_message_and_writes_nothing(contended) -> None:
    data, a_run, b_now, _, before, during, _ = contended
    assert b_now.returncode == 3, b_now.describe()
    message = b_now.stderr
    assert f"another newsflow run (pid {a_run.pid}) is writing to {data}" in message
    assert "this run did nothing" in message
    assert during == before  # B1 touched nothing while A held the lock


def test_a_waiting_run_starts_only_after_the_first_released_the_lock(contended) -> None:
    _data, a_run, _, b_wait_run, _, _, events = contended
    assert a_run.returncode == 0, a_run.describe()
    assert b_wait_run.returncode == 0, b_wait_run.describe()
    a_inside = [i for i, (pid, name) in enumerate(events) if pid == a_run.pid and name in INSIDE_LOCK]
    b_inside = [i for i, (pid, name) in enumerate(events) if pid == b_wait_run.pid and name in INSIDE_LOCK]
    b_busy = [i for i, (pid, name) in enumerate(events) if pid == b_wait_run.pid and name == "lock-busy"]
    assert a_inside and b_inside and b_busy
    assert events[a_inside[-1]][1] == "unlocking"
    assert b_busy[0] < a_inside[-1] < b_inside[0], "B did something inside the lock before A released it"
    # B found A's work done: every file unchanged, nothing new
    assert re.search(r"unchanged \(skipped\) +5\n", b_wait_run.stdout), b_wait_run.stdout


def test_after_both_runs_the_datasets_are_whole(contended) -> None:
    data, *_ = contended
    assert leftovers(data) == []
    frames = snapshot(data)  # readable by polars and DuckDB, no duplicates
    assert frames["files"].height == 5 and frames["articles"].height == 20
