"""The `newsflow` command line.

Arguments are checked before anything heavy is imported or any server starts: `--help`,
`--version` and a bad argument answer in well under 2 s, and a refused run touches nothing.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import typer

from flows import defaults as d

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    # plain help and errors: a flag reads `--full-refresh / --no-full-refresh`, a failure
    # that is a bug keeps its ordinary traceback
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    help="newsflow: seeds folder -> clean Parquet datasets, orchestrated by Prefect.",
)


# Options `run` and `backfill` share, in the words of the flow's parameters.
GLOB_OPTION = typer.Option(d.GLOB, "--glob", help=d.HELP["glob"])
FULL_REFRESH_OPTION = typer.Option(False, "--full-refresh/--no-full-refresh", help=d.HELP["full_refresh"])
THRESHOLD_OPTION = typer.Option(
    d.NEAR_DUPLICATE_THRESHOLD, "--near-duplicate-threshold", min=0.0, max=1.0, help=d.HELP["near_duplicate_threshold"]
)


def _version(show: bool) -> None:
    if show:
        from importlib.metadata import version

        typer.echo(f"newsflow {version('newsflow')}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Run `newsflow COMMAND --help` for a command's options."""


@contextlib.contextmanager
def _refused_in_one_line() -> Iterator[None]:
    """A bad argument found inside (tasks/errors.py::BadParameter) is refused in one line."""
    from tasks.errors import BadParameter

    try:
        yield
    except BadParameter as exc:
        raise refuse(str(exc)) from None


def refuse(message: str, code: int = 2) -> typer.Exit:
    """A refused argument: one line on stderr naming it and what to do, and the exit to raise."""
    typer.echo(f"newsflow: {message}", err=True)
    return typer.Exit(code)


def _history_server():
    """The Prefect server this run reports to (flows/server.py), its address set in the
    environment before Prefect is imported; a server it has to start boots meanwhile."""
    import os

    from flows.server import resolve_api
    from flows.settings import configure_prefect_environment

    configure_prefect_environment()
    server = resolve_api(wait=False)
    if server is not None:
        if server.started:
            typer.echo(f"starting the project's Prefect server for run history at {server.ui_url} (it keeps running)")
        os.environ["PREFECT_API_URL"] = server.api_url
    return server


def _check(seeds: Path, data: str, glob: str) -> None:
    """The arguments every run needs, checked with light imports only."""
    from tasks.pipeline.planning import check_seeds_dir, validate_glob
    from tasks.storage.location import check_data_dir

    with _refused_in_one_line():
        validate_glob(glob)
        check_seeds_dir(seeds)
        check_data_dir(data)


@app.command()
def run(
    seeds: Path = typer.Option(Path(d.SEEDS_DIR), "--seeds", help=d.HELP["seeds_dir"]),
    data: str = typer.Option(d.DATA_DIR, "--data", help=d.HELP["data_dir"]),
    glob: str = GLOB_OPTION,
    full_refresh: bool = FULL_REFRESH_OPTION,
    threshold: float = THRESHOLD_OPTION,
    lock_wait: float = typer.Option(
        d.LOCK_WAIT_SECONDS, "--lock-wait", min=0.0, help=d.HELP["lock_wait_seconds"] + " In seconds."
    ),
    workers: int = typer.Option(d.WORKERS, "--workers", min=0, help=d.HELP["workers"]),
    batch_mb: float = typer.Option(
        d.BATCH_BYTES / d.MB, "--batch-mb", min=0.001, help=d.HELP["batch_bytes"] + " In MB."
    ),
    task_mb: float = typer.Option(d.TASK_BYTES / d.MB, "--task-mb", min=0.001, help=d.HELP["task_bytes"] + " In MB."),
    runner: str = typer.Option("local", "--runner", help=d.HELP["runner"]),
    dask_address: str = typer.Option("", "--dask-address", help=d.HELP["dask_address"]),
) -> None:
    """Run the ingest flow once over SEEDS into DATA and print what it did.

    The run is recorded by a Prefect server: PREFECT_API_URL when set, else the project's
    local server (started in the background on first use and kept up; see `newsflow server`)."""
    _check(seeds, data, glob)
    if runner not in ("local", "dask"):
        raise refuse(f"--runner {runner!r} is not one of: local, dask")
    server = _history_server()
    from prefect import tags
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    from flows.ingest import ingest
    from flows.summary import render_text

    if server is not None:
        server.wait()  # a server started above booted while Prefect and the pipeline were imported
    # Heartbeats only mark crashed runs of deployments; joining their thread costs ~1 s a run.
    with tags(*d.TAGS, "run"), temporary_settings({PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        state = ingest(
            seeds_dir=str(seeds),
            data_dir=data,
            glob=glob,
            full_refresh=full_refresh,
            near_duplicate_threshold=threshold,
            lock_wait_seconds=lock_wait,
            workers=workers,
            batch_bytes=max(1, int(batch_mb * d.MB)),
            task_bytes=max(1, int(task_mb * d.MB)),
            runner=runner,  # type: ignore[arg-type]
            dask_address=dask_address or None,
            return_state=True,
        )
    outcome = state.result(raise_on_failure=False)
    if state.is_failed():
        code = getattr(outcome, "exit_code", 1)
        if not hasattr(outcome, "exit_code"):
            raise outcome if isinstance(outcome, BaseException) else RuntimeError(state.message)
        raise refuse(state.message or str(outcome), code)
    typer.echo(render_text(outcome))
    where = (
        server.flow_run_url(outcome["run_id"])
        if server
        else "Prefect's temporary server (NEWSFLOW_SERVER=ephemeral): not kept"
    )
    typer.echo(f"\nrun history: {where}")


@app.command()
def backfill(
    glob: str = GLOB_OPTION,
    full_refresh: bool = FULL_REFRESH_OPTION,
    threshold: float = THRESHOLD_OPTION,
    since: datetime | None = typer.Option(None, "--since", help=d.HELP["since"]),
    wait: bool = typer.Option(True, "--wait/--no-wait", help="Wait for the run to end and print its final state."),
) -> None:
    """Start a run of the served ingest/backfill deployment (`make serve` or `newsflow
    serve`) and print its address in the UI; with --wait, its final state."""
    from tasks.pipeline.planning import validate_glob

    with _refused_in_one_line():
        validate_glob(glob)
    from flows.server import trigger_backfill

    parameters = {"glob": glob, "full_refresh": full_refresh, "near_duplicate_threshold": threshold}
    if since is not None:
        parameters["since"] = since.isoformat()
    code = trigger_backfill(parameters, wait=wait, echo=typer.echo)
    raise typer.Exit(code)


@app.command()
def serve(
    seeds: Path = typer.Option(Path(d.SEEDS_DIR), "--seeds", help="Folder to watch: " + d.HELP["seeds_dir"]),
    data: str = typer.Option(d.DATA_DIR, "--data", help=d.HELP["data_dir"]),
    sweep_cron: str = typer.Option(
        d.SWEEP_CRON, "--sweep-cron", help=f"Cron schedule of ingest/sweep ({d.SWEEP_TIMEZONE} time)."
    ),
    sweep_interval: float = typer.Option(
        0.0, "--sweep-interval", min=0.0, help="Seconds between sweeps instead of the cron (0 = use the cron)."
    ),
    watch: bool = typer.Option(
        True, "--watch/--no-watch", help="Watch the seeds folder and emit events for ingest/on-file."
    ),
) -> None:
    """Serve ingest/sweep, ingest/on-file and ingest/backfill from this process, and watch SEEDS.

    Needs a running Prefect server (PREFECT_API_URL); `make serve` starts one."""
    import os

    if not os.environ.get("PREFECT_API_URL"):
        raise refuse(
            "newsflow serve needs a Prefect server: the embedded API cannot schedule runs. "
            "Start one with `make serve` (or `prefect server start`) and set PREFECT_API_URL."
        )
    _check(seeds, data, d.GLOB)
    from flows.serve import serve_all

    serve_all(seeds, data, sweep_cron=sweep_cron, sweep_interval=sweep_interval or None, watch=watch)


@app.command()
def watch(
    seeds: Path = typer.Option(Path(d.SEEDS_DIR), "--seeds", help="Folder to watch: " + d.HELP["seeds_dir"]),
) -> None:
    """Only the folder watcher: emit newsflow.seed.* events to the Prefect server (for
    deployments made with `prefect deploy` and run by a work pool)."""
    import threading

    from flows.watch import emit_prefect_event, watch_seeds

    typer.echo(f"watching {seeds.resolve()} (Ctrl-C to stop)")
    watch_seeds(seeds, emit_prefect_event, threading.Event())


@app.command()
def report(
    data: str = typer.Option(d.DATA_DIR, "--data", help=d.HELP["data_dir"]),
    out: Path | None = typer.Option(
        None, "--out", help="Write the page here instead of DATA/_reports/latest.html.", dir_okay=False
    ),
    runs: int = typer.Option(d.REPORT_RUNS, "--runs", min=1, max=1000, help="Runs in the 'last runs' charts."),
    serve: bool = typer.Option(
        False, "--serve/--no-serve", help="Then serve DATA/_reports over http on 127.0.0.1 until Ctrl-C."
    ),
    port: int | None = typer.Option(
        None,
        "--port",
        min=1,
        max=65535,
        show_default=False,
        help=f"Port for --serve  [default: NEWSFLOW_REPORT_PORT, else {d.REPORT_PORT}]",
    ),
) -> None:
    """Build the data-quality report of DATA as it stands (and its last recorded run): one
    self-contained HTML page. Needs no Prefect server."""
    from tasks.storage.location import check_data_dir, is_uri

    with _refused_in_one_line():
        check_data_dir(data)
    if not is_uri(data) and not any((Path(data) / name).is_dir() for name in ("files", "articles")):
        raise refuse(f"data folder {data!r} holds no datasets yet: run `newsflow run --data {data}` first")
    if out is not None and (not out.parent.is_dir() or out.is_dir()):
        raise refuse(f"--out {str(out)!r}: its folder does not exist or it is a folder")
    if serve and is_uri(data):
        raise refuse("--serve needs a local data folder; serve DATA/_reports with any web server instead")
    from flows.report import report_command, report_server
    from flows.settings import report_port

    try:
        report_command(data, out, runs, echo=typer.echo)
    except TimeoutError as exc:
        raise refuse(str(exc), 3) from None
    if serve:
        try:
            server = report_server(data, port or report_port())
        except OSError as exc:
            raise refuse(f"cannot serve on port {port or report_port()}: {exc.strerror or exc}") from None
        typer.echo(f"serving {data}/_reports on http://127.0.0.1:{server.server_address[1]}/latest.html (Ctrl-C stops)")
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()


def _add_subcommands() -> None:
    """The command groups of their own modules (each imports its heavy parts lazily)."""
    from bench.cli import bench_app
    from flows.server import server_app

    app.add_typer(server_app, name="server")
    app.add_typer(bench_app, name="bench")


_add_subcommands()


if __name__ == "__main__":
    app()
