"""Tests (and examples of use) for flows/server.py: `newsflow run` records its runs in the
project's own Prefect server, starting it once and leaving it for the next runs; a server of
another PREFECT_HOME is never used, and the report pages' port is never taken."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import urllib.request
from pathlib import Path

import pytest

from flows.server import find_server, port_free
from tests.paths import SEEDS
from tests.prefect_server import VENV_BIN

pytestmark = pytest.mark.slow  # a real server, `newsflow` as child processes


def newsflow(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(VENV_BIN / "newsflow"), *args], capture_output=True, text=True, timeout=240, env=env, check=False
    )


def three_free_ports() -> int:
    """A port P with P, P + 1 and P + 2 free."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port < 65000 and all(port_free("127.0.0.1", p) for p in (port, port + 1, port + 2)):
            return port
    raise RuntimeError("no three free ports in a row")


def test_a_server_of_another_home_is_never_used(prefect_api, tmp_path: Path) -> None:
    api, env = prefect_api
    port = int(api.rsplit(":", 1)[1].split("/")[0])
    assert find_server(Path(env["PREFECT_HOME"]).resolve(), port=port).api_url == api
    assert find_server(tmp_path, port=port) is None  # it answers, but its runs are not this project's


def test_the_first_run_starts_the_server_and_leaves_it_running_until_stopped(tmp_path: Path) -> None:
    home, seeds = tmp_path / "home", tmp_path / "seeds"
    shutil.copytree(SEEDS, seeds)
    preferred = three_free_ports()
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env.update(
        PREFECT_HOME=str(home),
        NEWSFLOW_SERVER_PORT=str(preferred),
        NEWSFLOW_REPORT_PORT=str(preferred + 1),
        NEWSFLOW_REPORT="off",
    )
    taken = socket.socket()  # someone else's service on the preferred port
    taken.bind(("127.0.0.1", preferred))
    taken.listen()
    try:
        first = newsflow(env, "run", "--seeds", str(seeds), "--data", str(tmp_path / "data"))
        assert first.returncode == 0, first.stdout + first.stderr
        # not the taken port, not the report pages' port: the next one
        ui = f"http://127.0.0.1:{preferred + 2}"
        assert re.search(rf"^run history: {ui}/runs/flow-run/[0-9a-f-]{{36}}$", first.stdout, re.M), first.stdout
        recorded = json.loads((home / "run" / "server.json").read_text())
        assert recorded["api_url"] == f"{ui}/api" and Path(recorded["home"]) == home.resolve()
        pid = int((home / "run" / "server.pid").read_text())

        again = newsflow(env, "server", "start")  # what the next run does first: find it
        assert again.stdout.startswith(f"Prefect UI: {ui} (running; run history in {home.resolve()})")
        assert int((home / "run" / "server.pid").read_text()) == pid
        request = urllib.request.Request(f"{ui}/api/flow_runs/count", data=b"{}", method="POST")
        request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=10) as r:
            assert json.loads(r.read()) == 1  # the run is in this project's history
        assert newsflow(env, "server", "status").stdout.startswith(f"local Prefect server: {ui};")
    finally:
        taken.close()
        stopped = newsflow(env, "server", "stop")
    assert stopped.stdout.strip() == "stopped"
    assert not Path(f"/proc/{pid}").exists()
    assert "not running" in newsflow(env, "server", "status").stdout
