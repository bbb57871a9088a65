"""Start a real Prefect server (and `newsflow serve`) as child processes for end-to-end tests."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url: str, timeout: float, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f}s")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@contextmanager
def prefect_server(home: Path, log: Path, database_url: str | None = None) -> Iterator[tuple[str, dict[str, str]]]:
    """A `prefect server start` on a free loopback port (SQLite under `home`, or the given
    database); yields (api_url, env for clients) once it answers."""
    server = start_prefect_server(home, log, database_url)
    try:
        yield server.ready()
    finally:
        server.stop()


class StartedServer:
    """A `prefect server start` child, booting: `ready()` waits until it answers."""

    def __init__(self, proc: subprocess.Popen, api: str, env: dict[str, str]) -> None:
        self.proc, self.api, self.env = proc, api, env

    def ready(self) -> tuple[str, dict[str, str]]:
        wait_for(f"{self.api}/health", timeout=180, proc=self.proc)
        return self.api, dict(self.env, PREFECT_API_URL=self.api)

    def stop(self) -> None:
        _stop(self.proc)


def start_prefect_server(home: Path, log: Path, database_url: str | None = None) -> StartedServer:
    """Start a `prefect server start` on a free loopback port and return at once (it boots
    in ~10-20 s; the caller can do other work meanwhile)."""
    port = free_port()
    # PREFECT_SERVER_API_PORT: the UI asks the API on that port (4200 otherwise)
    env = dict(
        os.environ, PREFECT_HOME=str(home), PREFECT_SERVER_ANALYTICS_ENABLED="false", PREFECT_SERVER_API_PORT=str(port)
    )
    if database_url:
        env["PREFECT_SERVER_DATABASE_CONNECTION_URL"] = database_url
    env.pop("PREFECT_API_URL", None)
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(VENV_BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return StartedServer(proc, f"http://127.0.0.1:{port}/api", env)


@contextmanager
def newsflow_serve(env: dict[str, str], args: list[str], log: Path) -> Iterator[subprocess.Popen]:
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(VENV_BIN / "newsflow"), "serve", *args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield proc
    finally:
        _stop(proc)


def postgres_bin() -> Path | None:
    """Debian's PostgreSQL server binaries, if installed (`apt-get install postgresql`)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    return found[-1].parent if found else None


@contextmanager
def postgres_database() -> Iterator[str]:
    """A throwaway PostgreSQL cluster on a free loopback port; yields an asyncpg URL for Prefect."""
    bindir = postgres_bin()
    assert bindir is not None, "PostgreSQL is not installed"
    # not under pytest's tmp_path: that is private to root, and the server runs as `postgres`
    root = Path(tempfile.mkdtemp(prefix="newsflow-pg-"))
    pgdata, sockets = root / "pgdata", root / "sockets"
    sockets.mkdir(exist_ok=True)
    as_postgres: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root
        subprocess.run(["chown", "-R", "postgres:postgres", str(root)], check=True)
        os.chmod(root, 0o755)
        as_postgres = ["runuser", "-u", "postgres", "--"]
    port = free_port()
    subprocess.run(
        as_postgres + [str(bindir / "initdb"), "-D", str(pgdata), "-U", "prefect", "--auth=trust"],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        as_postgres
        + [
            str(bindir / "pg_ctl"),
            "-D",
            str(pgdata),
            "-l",
            str(root / "postgres.log"),
            "-w",
            "-o",
            f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1",
            "start",
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    try:
        subprocess.run(
            as_postgres + [str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "prefect", "prefect"],
            check=True,
            capture_output=True,
        )
        yield f"postgresql+asyncpg://prefect@127.0.0.1:{port}/prefect"
    finally:
        subprocess.run(
            as_postgres + [str(bindir / "pg_ctl"), "-D", str(pgdata), "-m", "fast", "stop"],
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(root, ignore_errors=True)
