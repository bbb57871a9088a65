"""Prefect settings newsflow needs before Prefect is imported (Prefect reads them at import)."""

from __future__ import annotations

import os
from pathlib import Path

from flows import defaults as d

REPORT_PORT_ENV = "NEWSFLOW_REPORT_PORT"


def report_port() -> int:
    """Where the report pages are served: NEWSFLOW_REPORT_PORT, else flows/defaults.py's."""
    return int(os.environ.get(REPORT_PORT_ENV) or d.REPORT_PORT)


def project_root() -> Path:
    """The checkout newsflow runs from (where pyproject.toml is), else the current folder."""
    root = Path(__file__).resolve().parents[1]
    return root if (root / "pyproject.toml").is_file() else Path.cwd()


def project_home() -> Path:
    """Where run history lives: PREFECT_HOME when set, else the project's `.prefect/` (the
    same place `make run` and `make serve` use, so every run shows in the same UI)."""
    return Path(os.environ.get("PREFECT_HOME") or project_root() / ".prefect")


def configure_prefect_environment() -> None:
    os.environ.setdefault("PREFECT_HOME", str(project_home()))
    # No network here: never phone home, and no usage-data notice (only DO_NOT_TRACK stops it).
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    # Prefect's temporary server (tests, and `prefect` commands without PREFECT_API_URL)
    # creates and migrates its SQLite database at first start: longer than its 20 s default.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "INFO")
    # `newsflow serve` checks for runs to start every 2 s instead of 10 s: a file that
    # lands is ingested seconds later, and the poll is a cheap local query.
    os.environ.setdefault("PREFECT_RUNNER_POLL_FREQUENCY", "2")
    # A run held back by its deployment's limit of one run at a time is offered the slot
    # again 5 s later instead of 30 s (read by the server: the local one starts with it).
    os.environ.setdefault("PREFECT_SERVER_DEPLOYMENTS_CONCURRENCY_SLOT_WAIT_SECONDS", "5")
