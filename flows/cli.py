"""The `newsflow` command line."""

from __future__ import annotations

from pathlib import Path

import typer

from flows.settings import configure_prefect_environment

app = typer.Typer(add_completion=False, no_args_is_help=True, help="newsflow: seeds folder -> clean Parquet datasets, orchestrated by Prefect.")


@app.callback()
def main() -> None:
    configure_prefect_environment()


@app.command()
def run(
    seeds: Path = typer.Option(Path("seeds"), "--seeds", help="Folder of input .txt pages."),
    data: str = typer.Option("data", "--data", help="Folder of the Parquet datasets, or a filesystem URI (s3://bucket/newsflow, file:///srv/data)."),
    glob: str = typer.Option("**/*.txt", help="Which files of the seeds folder, relative to it."),
    full_refresh: bool = typer.Option(False, "--full-refresh", help="Rebuild every dataset from scratch."),
    threshold: float = typer.Option(0.8, "--near-duplicate-threshold", min=0.0, max=1.0, help="Jaccard similarity above which two articles are near-duplicates."),
    lock_wait: float = typer.Option(0.0, "--lock-wait", min=0.0, help="Seconds to wait if another run holds the data folder."),
    workers: int = typer.Option(0, min=0, help="Processes for batch work (0 = one per core)."),
    batch_mb: float = typer.Option(8.0, "--batch-mb", min=0.001, help="Most megabytes of input a worker process holds at once (bounds memory); batches are cut equal, as many as a multiple of the workers."),
    task_mb: float = typer.Option(32.0, "--task-mb", min=0.001, help="Megabytes of input per Prefect task run (bounds the task runs)."),
    runner: str = typer.Option("local", help="local, or dask (needs PREFECT_API_URL: a real Prefect server)."),
    dask_address: str = typer.Option("", help="Dask scheduler, e.g. tcp://host:8786 (empty: a LocalCluster)."),
) -> None:
    """Run the ingest flow once over SEEDS and print a summary."""
    from flows.ingest import ingest
    from flows.summary import render_text
    from tasks.pipeline.planning import UnsafeGlob, validate_glob
    from tasks.storage.lock import DataDirBusy

    try:
        validate_glob(glob)
    except UnsafeGlob as exc:
        typer.echo(f"newsflow: {exc}", err=True)
        raise typer.Exit(2) from None

    try:
        summary = ingest(
            seeds_dir=str(seeds),
            data_dir=data,
            glob=glob,
            full_refresh=full_refresh,
            near_duplicate_threshold=threshold,
            lock_wait_seconds=lock_wait,
            workers=workers,
            batch_bytes=max(1, int(batch_mb * 1024 * 1024)),
            task_bytes=max(1, int(task_mb * 1024 * 1024)),
            runner=runner,
            dask_address=dask_address or None,
        )
    except DataDirBusy as exc:
        typer.echo(f"newsflow: {exc}", err=True)
        raise typer.Exit(3) from None
    typer.echo(render_text(summary))


@app.command()
def serve(
    seeds: Path = typer.Option(Path("seeds"), "--seeds", help="Folder to watch."),
    data: str = typer.Option("data", "--data", help="Folder of the Parquet datasets, or a filesystem URI (s3://bucket/newsflow)."),
    sweep_cron: str = typer.Option("*/15 * * * *", help="Cron schedule of ingest/sweep."),
    sweep_interval: float = typer.Option(0.0, help="Seconds between sweeps instead of the cron (0 = use the cron)."),
    watch: bool = typer.Option(True, "--watch/--no-watch", help="Watch the seeds folder and emit events for ingest/on-file."),
) -> None:
    """Serve ingest/sweep, ingest/on-file and ingest/backfill from this process, and watch SEEDS.

    Needs a running Prefect server (PREFECT_API_URL); `make serve` starts one."""
    import os

    if not os.environ.get("PREFECT_API_URL"):
        typer.echo(
            "newsflow serve needs a Prefect server: the embedded API cannot schedule runs. "
            "Start one with `make serve` (or `prefect server start`) and set PREFECT_API_URL.",
            err=True,
        )
        raise typer.Exit(2)
    from flows.serve import serve_all

    serve_all(seeds, data, sweep_cron=sweep_cron, sweep_interval=sweep_interval or None, watch=watch)


@app.command()
def watch(
    seeds: Path = typer.Option(Path("seeds"), "--seeds", help="Folder to watch."),
) -> None:
    """Only the folder watcher: emit newsflow.seed.* events to the Prefect server (for
    deployments made with `prefect deploy` and run by a work pool)."""
    import threading

    from flows.watch import emit_prefect_event, watch_seeds

    typer.echo(f"watching {seeds.resolve()} (Ctrl-C to stop)")
    watch_seeds(seeds, emit_prefect_event, threading.Event())


from bench.cli import bench_app  # noqa: E402

app.add_typer(bench_app, name="bench")


if __name__ == "__main__":
    app()
