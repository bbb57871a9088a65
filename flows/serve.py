"""`newsflow serve`: every deployment of the ingest flow from one process, plus the watcher.

    ingest/sweep     every 15 minutes (cron configurable): all new or changed files
    ingest/on-file   a deployment trigger on the watcher's newsflow.seed.* events: those files
    ingest/backfill  for the UI's "Run" form: glob, full_refresh, threshold, since

Each deployment has a concurrency limit of 1 with ENQUEUE (a second trigger waits as
"AwaitingConcurrencySlot" in the UI), and every run takes the data folder's lock with a
wait, so runs of different deployments queue instead of writing `data/` together.
`prefect.serve` needs a real Prefect server (the ephemeral API cannot schedule):
`make serve` starts one on 127.0.0.1 and points this process at it.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from prefect import serve
from prefect.client.schemas.objects import (
    ConcurrencyLimitConfig,
    ConcurrencyLimitStrategy,
)
from prefect.events import DeploymentEventTrigger
from prefect.schedules import Cron, Interval

from flows import defaults as d
from flows.ingest import ingest
from flows.report import serve_in_background
from flows.watch import EVENT_CREATED, EVENT_MODIFIED, RESOURCE_PREFIX, start_watcher
from tasks.storage.location import is_uri


def _one_at_a_time() -> ConcurrencyLimitConfig:
    return ConcurrencyLimitConfig(limit=1, collision_strategy=ConcurrencyLimitStrategy.ENQUEUE)


def build_deployments(
    seeds_dir: Path, data_dir: Path | str, sweep_cron: str = d.SWEEP_CRON, sweep_interval: float | None = None
) -> list:
    base = {
        "seeds_dir": str(seeds_dir.resolve()),
        # a filesystem URI (s3://...) as given; a local folder made absolute for the runs
        "data_dir": str(data_dir) if is_uri(str(data_dir)) else str(Path(data_dir).resolve()),
        "lock_wait_seconds": d.SERVED_LOCK_WAIT_SECONDS,
    }
    schedule = (
        Interval(timedelta(seconds=sweep_interval)) if sweep_interval else Cron(sweep_cron, timezone=d.SWEEP_TIMEZONE)
    )

    def deployment(name: str, **how):
        return ingest.to_deployment(
            name=name,
            parameters=base,
            concurrency_limit=_one_at_a_time(),
            tags=[*d.TAGS, name],
            description=d.DEPLOYMENTS[name],
            **how,
        )

    sweep = deployment("sweep", schedule=schedule)
    on_file = deployment(
        "on-file",
        triggers=[
            DeploymentEventTrigger(
                name="newsflow seeds changed",
                expect={EVENT_CREATED, EVENT_MODIFIED},
                match={"prefect.resource.id": f"{RESOURCE_PREFIX}*"},
                parameters={"files": "{{ event.payload.files }}"},
            )
        ],
    )
    backfill = deployment("backfill")
    return [sweep, on_file, backfill]


def serve_all(
    seeds_dir: Path,
    data_dir: Path | str,
    sweep_cron: str = d.SWEEP_CRON,
    sweep_interval: float | None = None,
    watch: bool = True,
) -> None:
    """Blocks: serves the three deployments and (by default) watches the seeds folder."""
    seeds_dir.mkdir(parents=True, exist_ok=True)
    deployments = build_deployments(seeds_dir, data_dir, sweep_cron, sweep_interval)
    serve_in_background(data_dir)  # the report pages the runs' link artifacts point to
    stop = None
    if watch:
        _, stop = start_watcher(seeds_dir)
    try:
        serve(*deployments, print_starting_message=True)
    finally:
        if stop is not None:
            stop.set()
