"""Prefect settings newsflow needs before prefect is imported (no network, slow first start)."""

from __future__ import annotations

import os


def configure_prefect_environment() -> None:
    # No network here: never phone home. The first start of the ephemeral API creates
    # and migrates its SQLite database, which takes longer than Prefect's 20 s default.
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "INFO")
