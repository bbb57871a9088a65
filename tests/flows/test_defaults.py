"""prefect.yaml: `prefect deploy --all` against a process work pool on a real server."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest
import yaml
from prefect.client.orchestration import get_client
from prefect.settings import PREFECT_API_URL, temporary_settings

from tests.paths import REPO
from tests.prefect_server import VENV_BIN, prefect_server

pytestmark = pytest.mark.slow


def test_prefect_yaml_declares_the_three_served_deployments() -> None:
    from flows.serve import build_deployments

    declared = yaml.safe_load((REPO / "prefect.yaml").read_text())
    names = [d["name"] for d in declared["deployments"]]
    served = [d.name for d in build_deployments(REPO / "seeds", REPO / "data")]
    assert names == served == ["sweep", "on-file", "backfill"]
    assert all(d["entrypoint"] == "flows/ingest.py:ingest" for d in declared["deployments"])
    assert all(d["concurrency_limit"] == {"limit": 1, "collision_strategy": "ENQUEUE"} for d in declared["deployments"])


def test_prefect_deploy_all_to_a_process_work_pool(tmp_path: Path) -> None:
    with prefect_server(tmp_path / "home", tmp_path / "server.log") as (api, env):
        env = dict(env, NEWSFLOW_HOME=str(REPO))
        prefect = str(VENV_BIN / "prefect")
        subprocess.run(
            [prefect, "work-pool", "create", "newsflow", "--type", "process"],
            env=env,
            cwd=REPO,
            check=True,
            capture_output=True,
            timeout=120,
        )
        deployed = subprocess.run(
            [prefect, "--no-prompt", "deploy", "--all"], env=env, cwd=REPO, capture_output=True, text=True, timeout=300
        )
        assert deployed.returncode == 0, deployed.stdout[-3000:] + deployed.stderr[-3000:]

        async def read():
            async with get_client() as client:
                return await client.read_deployments()

        with temporary_settings({PREFECT_API_URL: api}):
            deployments = {d.name: d for d in asyncio.run(read())}
    assert set(deployments) == {"sweep", "on-file", "backfill"}
    assert all(d.work_pool_name == "newsflow" for d in deployments.values())
    assert deployments["sweep"].schedules and deployments["sweep"].schedules[0].schedule.cron == "*/15 * * * *"
    assert deployments["backfill"].parameter_openapi_schema["properties"]["near_duplicate_threshold"]["maximum"] == 1.0
    assert deployments["on-file"].global_concurrency_limit.limit == 1
