"""The Prefect server that records newsflow's runs, so that every run shows in the UI.

`newsflow run` talks to, in this order:

1. the server of `PREFECT_API_URL`, when it is set (any Prefect server);
2. the project's local server on 127.0.0.1:4200 -- the one `make serve` starts -- when it
   answers;
3. else it starts that server in the background (SQLite under the project's `.prefect/`,
   its log in `.prefect/run/server.log`) and leaves it running for the next runs and the
   UI: starting one costs ~10 s, talking to a running one ~2 s less than Prefect's own
   temporary server takes to start for every run. `newsflow server stop` (or `make stop`)
   stops it.

Imports nothing of Prefect: Prefect reads its settings when it is imported, so the API
address is decided here first.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import typer

from flows.settings import configure_prefect_environment, project_home

HOST = "127.0.0.1"
PORT = int(os.environ.get("NEWSFLOW_SERVER_PORT", "4200"))
START_TIMEOUT_SECONDS = 180.0


@dataclass(frozen=True)
class Api:
    """A Prefect API and where its UI shows a run."""

    url: str  # http://127.0.0.1:4200/api

    @property
    def ui(self) -> str:
        return self.url.removesuffix("/").removesuffix("/api")

    def run_url(self, flow_run_id: str) -> str:
        return f"{self.ui}/runs/flow-run/{flow_run_id}"


def local_api() -> Api:
    return Api(f"http://{HOST}:{PORT}/api")


def run_dir() -> Path:
    return project_home() / "run"


def answers(api: Api, timeout: float = 1.0) -> bool:
    """The API's health endpoint answers."""
    try:
        with urllib.request.urlopen(f"{api.url}/health", timeout=timeout) as response:
            return response.status == 200
    except OSError:
        return False


def use_local_server(echo: Callable[[str], None] = print) -> Api:
    """The API this process's runs go to (see the module docstring), set in the environment
    before Prefect is imported; starts the local server when none answers."""
    configure_prefect_environment()
    given = os.environ.get("PREFECT_API_URL")
    if given:
        return Api(given)
    api = local_api()
    if not answers(api):
        echo(
            "starting the local Prefect server for run history at "
            f"{api.ui} (once; it keeps running: `newsflow server stop`)"
        )
        start_local_server(api)
    os.environ["PREFECT_API_URL"] = api.url
    return api


def start_local_server(api: Api) -> None:
    """Start `prefect server start` in the background (its own session: it outlives this
    process) and wait until it answers. A lock file makes concurrent callers start one."""
    folder = run_dir()
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "server.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if answers(api):  # another process started it while this one waited
            return
        log = folder / "server.log"
        env = dict(os.environ, PREFECT_HOME=str(project_home()))
        env.pop("PREFECT_API_URL", None)
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                [
                    str(Path(sys.executable).with_name("prefect")),
                    "server",
                    "start",
                    "--host",
                    HOST,
                    "--port",
                    str(PORT),
                ],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        (folder / "server.pid").write_text(str(proc.pid))
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while not answers(api):
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = log.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"the local Prefect server did not start (see {log}):\n{tail}")
            time.sleep(0.25)


def stop_local_server() -> bool:
    """Stop the local server this project started (`newsflow server stop`, `make stop`)."""
    pid_file = run_dir() / "server.pid"
    try:
        pid = int(pid_file.read_text())
    except (OSError, ValueError):
        return False
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGTERM)
    for _ in range(40):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.25)
    pid_file.unlink(missing_ok=True)
    return True


server_app = typer.Typer(
    add_completion=False, no_args_is_help=True, help="The local Prefect server that records the runs (UI on 127.0.0.1)."
)


@server_app.command("start")
def server_start() -> None:
    """Start the local server (if none answers) and print the UI's address."""
    api = use_local_server(echo=typer.echo)
    typer.echo(f"Prefect UI: {api.ui}")


@server_app.command("status")
def server_status() -> None:
    """Say whether the local server answers, and where its data is."""
    configure_prefect_environment()
    api = local_api()
    state = "running" if answers(api) else "not running"
    typer.echo(f"local Prefect server {api.ui}: {state}; run history in {project_home()}")


@server_app.command("stop")
def server_stop() -> None:
    """Stop the local server that newsflow started."""
    typer.echo("stopped" if stop_local_server() else "no local server started by newsflow")


def trigger_backfill(parameters: dict, wait: bool, echo: Callable[[str], None] = print) -> int:
    """Run the served `ingest/backfill` deployment with these parameters on the server that
    serves it; print the run's UI address and, with `wait`, its final state. Exit status:
    0 completed (or started), 1 failed, 2 no server or no deployment."""
    configure_prefect_environment()
    api = Api(os.environ["PREFECT_API_URL"]) if os.environ.get("PREFECT_API_URL") else local_api()
    if not answers(api):
        echo(
            f"newsflow: no Prefect server answers at {api.url}: start the "
            "served deployments with `make serve` (or set PREFECT_API_URL)"
        )
        return 2
    os.environ["PREFECT_API_URL"] = api.url
    from prefect.deployments import run_deployment
    from prefect.exceptions import ObjectNotFound

    try:
        run = run_deployment("ingest/backfill", parameters=parameters, timeout=0, tags=["newsflow", "backfill", "cli"])
    except ObjectNotFound:
        echo(
            f"newsflow: the server at {api.url} has no ingest/backfill "
            "deployment: start it with `make serve` (or `newsflow serve`)"
        )
        return 2
    echo(f"backfill run: {api.run_url(str(run.id))}")
    if not wait:
        return 0
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        while True:
            run = client.read_flow_run(run.id)
            if run.state is not None and run.state.is_final():
                break
            time.sleep(1.0)
    echo(f"{run.name}: {run.state.name}" + (f": {run.state.message}" if run.state.message else ""))
    return 0 if run.state.is_completed() else 1
