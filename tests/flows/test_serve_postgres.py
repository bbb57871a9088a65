"""The served loop with the Prefect server on PostgreSQL (production's database): a file
dropped in the folder is ingested by an on-file run, and a backfill runs from parameters."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from prefect.deployments import run_deployment
from prefect.settings import PREFECT_API_URL, temporary_settings

from tasks.schema import FILES, C
from tasks.storage.parquet import read_dataset
from tests.conftest import SEEDS
from tests.flows.test_serve import _wait_for_deployments, _wait_runs_final
from tests.prefect_server import (
    newsflow_serve,
    postgres_bin,
    postgres_database,
    prefect_server,
)

pytestmark = [
    pytest.mark.slow,
    # .ci/run installs PostgreSQL (Debian's package) so CI always runs this test
    pytest.mark.skipif(
        postgres_bin() is None, reason="PostgreSQL server binaries not installed (apt-get install postgresql)"
    ),
]


def test_served_loop_on_a_postgres_backed_prefect_server(tmp_path: Path) -> None:
    seeds, data = tmp_path / "seeds", tmp_path / "data"
    seeds.mkdir()
    with postgres_database() as db_url:
        with prefect_server(tmp_path / "home", tmp_path / "server.log", database_url=db_url) as (api, env):
            with temporary_settings({PREFECT_API_URL: api}):
                with newsflow_serve(env, ["--seeds", str(seeds), "--data", str(data)], tmp_path / "serve.log") as proc:
                    asyncio.run(_wait_for_deployments(["sweep", "on-file", "backfill"], proc))
                    landed = time.monotonic()
                    shutil.copy(SEEDS / "003_cdf2a856273f76b8.txt", seeds / "003.txt")
                    (run,) = asyncio.run(_wait_runs_final("on-file", 1, timeout=120))
                    latency = time.monotonic() - landed
                    assert run.state.is_completed(), run.state
                    shutil.copy(SEEDS / "001_8f0a371468faaa72.txt", seeds / "001.txt")
                    backfill = run_deployment("ingest/backfill", parameters={"glob": "00*.txt"}, timeout=180)
                    assert backfill.state.is_completed(), backfill.state
            # the run history really lives in PostgreSQL
            port = db_url.rsplit(":", 1)[1].split("/")[0]
            rows = subprocess.run(
                [
                    "psql",
                    "-h",
                    "127.0.0.1",
                    "-p",
                    port,
                    "-U",
                    "prefect",
                    "-d",
                    "prefect",
                    "-tAc",
                    "select count(*) from flow_run where state_name = 'Completed'",
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            assert int(rows.stdout.strip()) >= 2
    files = read_dataset(data, FILES).get_column(C.source_file).sort().to_list()
    assert files == ["001.txt", "003.txt"]
    print(f"\n[postgres] file landing -> rows in data/: {latency:.1f} s")
