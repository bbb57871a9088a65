"""Prefect settings newsflow needs before prefect is imported (no network, slow first start)."""

from __future__ import annotations

import os


def configure_prefect_environment() -> None:
    # No network here: never phone home. The first start of the ephemeral API creates
    # and migrates its SQLite database, which takes longer than Prefect's 20 s default.
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "INFO")
    # `newsflow serve` checks for runs to start every 2 s instead of 10 s: a file that
    # lands is ingested seconds later, and the poll is a cheap local query.
    os.environ.setdefault("PREFECT_RUNNER_POLL_FREQUENCY", "2")
