"""The fault-injection suite: one real Prefect server for every `newsflow run` child of the
session (no ephemeral API start per child), and a table of figures at the end."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.faults.harness import STATS, child_env

_STARTED = time.monotonic()


@pytest.fixture(scope="session")
def suite_env(prefect_api):
    """Environment for `newsflow run` children: PREFECT_API_URL of the session's server."""
    return child_env(prefect_api[1], PREFECT_LOGGING_LEVEL="INFO")


@pytest.fixture
def logs(tmp_path: Path) -> Path:
    path = tmp_path / "logs"
    path.mkdir()
    return path


def _mb(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f} MB"


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    s = STATS
    if not (s.inputs_tried or s.kills_planned or s.rss_mb):
        return
    rows = [
        ("fault seed (NEWSFLOW_FAULT_SEED)", "-" if s.seed is None else str(s.seed)),
        ("bad/odd inputs tried", str(s.inputs_tried)),
        ("  quarantined", str(s.quarantined)),
        ("  processed", str(s.processed)),
        ("  ignored by design (hidden, partial)", str(s.ignored)),
        ("kill -9 points planned", str(s.kills_planned)),
        ("kill points survived (re-run == clean run)", str(s.kill_points_survived)),
        ("  of which time-based kills", str(s.time_kills)),
        ("rows compared after re-runs", f"{s.rows_compared:,}"),
        ("rows lost (must be 0)", str(s.rows_lost)),
    ]
    rows += [(f"peak RSS: {k}", _mb(v)) for k, v in s.rss_mb.items()]
    rows += [(f"wall time: {k}", f"{v:,.1f} s") for k, v in s.wall_s.items()]
    rows.append(("pytest session time so far", f"{time.monotonic() - _STARTED:,.0f} s"))
    width = max(len(k) for k, _ in rows)
    terminalreporter.section("newsflow fault-injection summary")
    for k, v in rows:
        terminalreporter.write_line(f"{k:<{width}}  {v:>12}")
    for note in s.notes:
        terminalreporter.write_line(f"note: {note}")
