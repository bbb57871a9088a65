"""The Prefect server that records newsflow's runs, so that every run shows in the UI.

`newsflow run` talks to (`resolve_api`), in this order:

1. the server of `PREFECT_API_URL`, when it is set (any Prefect server);
2. Prefect's temporary in-process server when `NEWSFLOW_SERVER=ephemeral` (~15 s a run);
3. the project's local server -- the one recorded in `<PREFECT_HOME>/run/server.json`, or the
   one answering on 127.0.0.1:4200 (`make serve`'s) -- when its PREFECT_HOME is the project's
   (a server of another checkout is never used: the runs would land in its history);
4. else it starts that server in the background (all its services: the UI's run history
   needs them; SQLite under `<PREFECT_HOME>`; log `run/server.log`, pid `run/server.pid`, the
   file `make serve` and `make stop` use) on 4200 or the next free port, and leaves it
   running for the next runs and the UI. A file lock makes runs started at once share one.

Starting one costs ~8 s (14 s on a fresh database); a run against a running one costs
2.7x `import prefect` (no-op) to 3.8x (the five seeds) instead of Prefect's temporary
server's ~16 s per run. Imports nothing
of Prefect: Prefect reads its settings once, at import, so the address is decided here first.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import typer

from flows.settings import configure_prefect_environment, project_home, report_port
from tasks.process.flock import flock_within

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = int(os.environ.get("NEWSFLOW_SERVER_PORT", "4200"))  # make serve's PORT
# where to look when DEFAULT_PORT is taken: never the report pages' port (`newsflow serve`)
PORT_RANGE = [p for p in range(DEFAULT_PORT + 1, DEFAULT_PORT + 100) if p != report_port()]
STARTUP_TIMEOUT_S = 180.0  # a first start on a fresh DB runs all migrations: 11-17 s here, more under load
POLL_S = 0.1


@dataclass
class ServerInfo:
    api_url: str  # http://127.0.0.1:4200/api
    home: str  # the server's PREFECT_HOME: its SQLite database is <home>/prefect.db
    pid: int | None = None  # None: not ours to manage (PREFECT_API_URL, or unknown)
    started: bool = False  # True: this call started it
    log: str | None = None
    start_seconds: float = 0.0  # wait for it (lock + start + health), 0 when found running
    ready: bool = True  # False: started (or being started) but /api/health not answered yet
    version: str | None = None  # the server's Prefect version (GET /api/admin/version)

    @property
    def ui_url(self) -> str:
        return self.api_url.removesuffix("/api")

    def wait(self, timeout: float = STARTUP_TIMEOUT_S) -> ServerInfo:
        """Block until /api/health answers (no-op for a server found running). With
        ensure_server(wait=False) the caller imports prefect and the flow (~2-3 s of CPU) while
        the server boots, and calls this just before the flow."""
        if self.ready:
            return self
        t0 = time.monotonic()
        log_path = Path(self.log) if self.log else None
        while time.monotonic() - t0 < timeout:
            if healthy(self.api_url):
                self.ready = True
                self.start_seconds += time.monotonic() - t0
                return self
            if self.pid and not pid_alive(self.pid):
                tail = log_path.read_text(errors="replace")[-2000:] if log_path and log_path.exists() else ""
                raise RuntimeError(f"the Prefect server (pid {self.pid}) exited while starting; {self.log}:\n{tail}")
            time.sleep(POLL_S)
        raise TimeoutError(
            f"the Prefect server did not answer {self.api_url}/health within {timeout:.0f} s; see {self.log}"
        )

    def flow_run_url(self, flow_run_id: str) -> str:
        # Prefect 3.8.8: prefect.utilities.urls.url_for("flow-run", id) -> <ui>/runs/flow-run/<id>
        # (the V1 UI route; the V2 UI has the same page under <ui>/v2/runs/flow-run/<id>).
        return f"{self.ui_url}/runs/flow-run/{flow_run_id}"


def run_dir(home: Path) -> Path:
    d = home / "run"
    d.mkdir(parents=True, exist_ok=True)
    return d


# ------------------------------------------------------------------ probes


def _get_json(url: str, timeout: float):
    with urllib.request.urlopen(url, timeout=timeout) as r:  # noqa: S310 (http://127.0.0.1 only)
        return json.loads(r.read() or b"null")


def healthy(api_url: str, timeout: float = 1.0) -> bool:
    try:
        return _get_json(f"{api_url}/health", timeout) is True
    except (OSError, ValueError, urllib.error.URLError):
        return False


def server_home(api_url: str, timeout: float = 2.0) -> str | None:
    """The PREFECT_HOME of the server answering at api_url (GET /api/admin/settings)."""
    try:
        return (_get_json(f"{api_url}/admin/settings", timeout) or {}).get("home")
    except (OSError, ValueError, urllib.error.URLError):
        return None


def server_version(api_url: str, timeout: float = 2.0) -> str | None:
    try:
        return _get_json(f"{api_url}/admin/version", timeout)
    except (OSError, ValueError, urllib.error.URLError):
        return None


def port_free(host: str, port: int) -> bool:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
            return True
        except OSError:
            return False


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def is_prefect_server(pid: int | None) -> bool:
    """pid is alive and runs `prefect server start` (or uvicorn with prefect's app): a pid file
    left by a crash may name a reused pid."""
    if not pid_alive(pid):
        return False
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        return True  # no /proc (macOS): trust the pid
    return b"prefect" in cmd and (b"server" in cmd or b"uvicorn" in cmd)


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _same_home(a: str | None, b: Path) -> bool:
    return a is not None and Path(a).expanduser().resolve() == b


# ------------------------------------------------------------------ find / start


def find_server(home: Path, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> ServerInfo | None:
    """A healthy server whose PREFECT_HOME is `home`: the recorded one, else host:port."""
    rd = run_dir(home)
    candidates = [_recorded_url(rd), f"http://{host}:{port}/api"]
    for api_url in dict.fromkeys(c for c in candidates if c):
        if healthy(api_url) and _same_home(server_home(api_url), home):
            pid = _read_pid(rd / "server.pid")
            return ServerInfo(
                api_url,
                str(home),
                pid if is_prefect_server(pid) else None,
                log=str(rd / "server.log"),
                version=server_version(api_url),
            )
    return None


def installed_prefect_version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version  # stdlib; does not import prefect

    try:
        return version("prefect")
    except PackageNotFoundError:
        return None


def _outdated(found: ServerInfo) -> bool:
    """A server left running from before a `uv sync` that changed Prefect's version."""
    mine = installed_prefect_version()
    return bool(found.version and mine and found.version != mine)


@contextlib.contextmanager
def _locked(path: Path, timeout: float):
    """An exclusive flock on `path` (released when the process dies, so never stale)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        if not flock_within(fd, timeout, poll_seconds=POLL_S):
            raise TimeoutError(f"another newsflow is starting the Prefect server (lock {path})")
        yield
    finally:
        os.close(fd)  # closes the lock too


def _pick_port(host: str, preferred: int) -> int:
    for port in [preferred, *PORT_RANGE]:
        if port_free(host, port):
            return port
    raise RuntimeError(f"no free port for a Prefect server on {host} in {preferred}-{PORT_RANGE[-1]}")


def server_command(host: str, port: int) -> list[str]:
    """The full server (all services): the UI's run history needs the task-run recorder and the
    event persister; `newsflow serve` (schedules, triggers) needs the scheduler and triggers."""
    return [sys.executable, "-m", "prefect", "server", "start", "--host", host, "--port", str(port), "--analytics-off"]


def start_server(home: Path, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> ServerInfo:
    """Start `prefect server start` detached; returns at once (info.wait() for health).
    Call under the lock: once server.pid is written, others wait for this server."""
    rd = run_dir(home)
    port = _pick_port(host, port)
    api_url = f"http://{host}:{port}/api"
    log_path = rd / "server.log"
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env.update(
        PREFECT_HOME=str(home),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        DO_NOT_TRACK="1",
        PREFECT_SERVER_API_HOST=host,
        PREFECT_SERVER_API_PORT=str(port),
    )
    with open(log_path, "ab") as log:
        log.write(
            f"\n--- started by newsflow (pid {os.getpid()}) at {time.strftime('%Y-%m-%d %H:%M:%S')} "
            f"on {api_url}\n".encode()
        )
        log.flush()
        proc = subprocess.Popen(
            server_command(host, port),
            env=env,
            cwd=str(home),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # own process group: survives this run; `make stop` kills -pgid
            close_fds=True,
        )
    (rd / "server.pid").write_text(str(proc.pid))
    info = ServerInfo(api_url, str(home), proc.pid, started=True, log=str(log_path), ready=False)
    (rd / "server.json").write_text(json.dumps({"api_url": api_url, "home": str(home), "pid": proc.pid}, indent=1))
    return info


def ensure_server(
    home: Path | None = None,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    timeout: float = STARTUP_TIMEOUT_S,
    wait: bool = True,
) -> ServerInfo:
    """The project's server, started if needed; concurrency-safe through a file lock.
    wait=False: return as soon as the address is known (started or starting); call .wait()."""
    home = (home or project_home()).resolve()
    t0 = time.monotonic()
    if found := find_server(home, host, port):
        if not _outdated(found):
            return found
        if found.pid:  # ours (or make serve's): restart it on the installed Prefect (it migrates the DB)
            print(
                f"newsflow: restarting the Prefect server {found.version} -> {installed_prefect_version()}",
                file=sys.stderr,
            )
            stop_server(home)
        else:
            print(
                f"newsflow: warning: the Prefect server at {found.ui_url} runs {found.version}, "
                f"this client {installed_prefect_version()}",
                file=sys.stderr,
            )
            return found
    rd = run_dir(home)
    with _locked(rd / "server.lock", timeout):
        if found := find_server(home, host, port):  # someone started it while we waited
            found.start_seconds = time.monotonic() - t0
            return found
        pid = _read_pid(rd / "server.pid")
        if is_prefect_server(pid):  # being started by another newsflow (or `make serve`): wait for it
            api_url = _recorded_url(rd) or f"http://{host}:{port}/api"
            info = ServerInfo(api_url, str(home), pid, log=str(rd / "server.log"), ready=False)
        else:
            info = start_server(home, host, port)
    info.start_seconds = time.monotonic() - t0
    return info.wait(timeout) if wait else info


def _recorded_url(rd: Path) -> str | None:
    with contextlib.suppress(OSError, ValueError, KeyError):
        return json.loads((rd / "server.json").read_text())["api_url"]
    return None


def stop_server(home: Path | None = None, timeout: float = 10.0) -> bool:
    """Stop the server newsflow (or `make serve`) started: SIGTERM to its process group."""
    home = (home or project_home()).resolve()
    rd = run_dir(home)
    pid = _read_pid(rd / "server.pid")
    if not is_prefect_server(pid):
        (rd / "server.pid").unlink(missing_ok=True)
        return False
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while pid_alive(pid) and time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.1)
    if pid_alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
    (rd / "server.pid").unlink(missing_ok=True)
    (rd / "server.json").unlink(missing_ok=True)
    return True


def resolve_api(home: Path | None = None, wait: bool = True) -> ServerInfo | None:
    """Where this run's history goes. None: Prefect's temporary server (NEWSFLOW_SERVER=ephemeral)."""
    home = (home or project_home()).resolve()
    if url := os.environ.get("PREFECT_API_URL"):
        return ServerInfo(url.rstrip("/"), server_home(url.rstrip("/")) or "?")
    mode = os.environ.get("NEWSFLOW_SERVER", "auto")
    if mode == "ephemeral":
        return None
    if mode not in ("auto", ""):
        raise ValueError(f"NEWSFLOW_SERVER={mode!r}: expected auto or ephemeral (or set PREFECT_API_URL)")
    return ensure_server(home, wait=wait)


server_app = typer.Typer(
    add_completion=False, no_args_is_help=True, help="The local Prefect server that records the runs (UI on 127.0.0.1)."
)


@server_app.command("start")
def server_start() -> None:
    """Start the local server (if none answers) and print the UI's address."""
    configure_prefect_environment()
    server = ensure_server()
    typer.echo(
        f"Prefect UI: {server.ui_url} ({'started' if server.started else 'running'}; run history in {server.home})"
    )


@server_app.command("status")
def server_status() -> None:
    """Say whether the local server answers, and where its data is."""
    configure_prefect_environment()
    found = find_server(project_home().resolve())
    typer.echo(f"local Prefect server: {found.ui_url if found else 'not running'}; run history in {project_home()}")


@server_app.command("stop")
def server_stop() -> None:
    """Stop the local server that newsflow started."""
    configure_prefect_environment()
    typer.echo("stopped" if stop_server() else "no local Prefect server of this project is running")


def trigger_backfill(parameters: dict, wait: bool, echo: Callable[[str], None] = print) -> int:
    """Run the served `ingest/backfill` deployment with these parameters on the server that
    serves it; print the run's UI address and, with `wait`, its final state. Exit status:
    0 completed (or started), 1 failed, 2 no server or no deployment."""
    configure_prefect_environment()
    given = os.environ.get("PREFECT_API_URL")
    found = ServerInfo(given.rstrip("/"), "?") if given else find_server(project_home().resolve())
    url = found.api_url if found else f"http://{DEFAULT_HOST}:{DEFAULT_PORT}/api"
    if found is None or not healthy(url):
        echo(
            f"newsflow: no Prefect server answers at {url}: "
            "start the served deployments with `make serve` (or set PREFECT_API_URL)"
        )
        return 2
    os.environ["PREFECT_API_URL"] = url
    from prefect.deployments import run_deployment
    from prefect.exceptions import ObjectNotFound

    try:
        run = run_deployment("ingest/backfill", parameters=parameters, timeout=0, tags=["newsflow", "backfill", "cli"])
    except ObjectNotFound:
        echo(
            f"newsflow: the server at {url} has no ingest/backfill "
            "deployment: start it with `make serve` (or `newsflow serve`)"
        )
        return 2
    echo(f"backfill run: {found.flow_run_url(str(run.id))}")
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
