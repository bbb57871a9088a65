"""flows/defaults.py is the one home of the defaults: the flow, the CLI, `newsflow serve` and
prefect.yaml (checked here, and deployed with `prefect deploy --all` to a process work pool)."""

from __future__ import annotations

import asyncio
import subprocess

import pytest
import yaml
from prefect.client.orchestration import get_client
from prefect.settings import PREFECT_API_URL, temporary_settings

from flows import defaults as d
from tests.paths import REPO
from tests.prefect_server import VENV_BIN


def test_prefect_yaml_agrees_with_the_defaults() -> None:
    declared = yaml.safe_load((REPO / "prefect.yaml").read_text())
    by_name = {dep["name"]: dep for dep in declared["deployments"]}
    assert {name: dep["description"] for name, dep in by_name.items()} == d.DEPLOYMENTS
    assert all(dep["tags"] == [*d.TAGS, name] for name, dep in by_name.items())
    (schedule,) = by_name["sweep"]["schedules"]
    assert schedule == {"cron": d.SWEEP_CRON, "timezone": d.SWEEP_TIMEZONE}
    for dep in by_name.values():
        assert dep["parameters"] == {
            "seeds_dir": d.SEEDS_DIR,
            "data_dir": d.DATA_DIR,
            "lock_wait_seconds": d.SERVED_LOCK_WAIT_SECONDS,
        }


def test_the_flow_and_the_cli_take_their_defaults_and_words_from_one_place() -> None:
    from typer.main import get_command

    from flows.cli import app
    from flows.ingest import ingest

    schema = ingest.parameters.properties
    for name, help_text in d.HELP.items():
        assert schema[name]["description"] == help_text, name
    assert schema["near_duplicate_threshold"]["default"] == d.NEAR_DUPLICATE_THRESHOLD
    assert schema["batch_bytes"]["default"] == d.BATCH_BYTES and schema["task_bytes"]["default"] == d.TASK_BYTES
    run = get_command(app).commands["run"]
    options = {p.name: p for p in run.params}
    assert (
        options["threshold"].default == d.NEAR_DUPLICATE_THRESHOLD
        and options["threshold"].help == d.HELP["near_duplicate_threshold"]
    )
    assert options["glob"].help == d.HELP["glob"] and options["full_refresh"].help == d.HELP["full_refresh"]
    assert all(p.help for p in run.params)  # every option described


def test_prefect_yaml_declares_the_three_served_deployments() -> None:
    from flows.serve import build_deployments

    declared = yaml.safe_load((REPO / "prefect.yaml").read_text())
    names = [d["name"] for d in declared["deployments"]]
    served = [d.name for d in build_deployments(REPO / "seeds", REPO / "data")]
    assert names == served == ["sweep", "on-file", "backfill"]
    assert all(d["entrypoint"] == "flows/ingest.py:ingest" for d in declared["deployments"])
    assert all(d["concurrency_limit"] == {"limit": 1, "collision_strategy": "ENQUEUE"} for d in declared["deployments"])


@pytest.mark.slow
def test_prefect_deploy_all_to_a_process_work_pool(prefect_api) -> None:
    api, env = prefect_api
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

    async def read_then_delete():
        # deleted again: `newsflow serve` (tests/flows/test_serve.py) serves the same names
        async with get_client() as client:
            found = await client.read_deployments()
            for dep in found:
                await client.delete_deployment(dep.id)
            for automation in await client.read_automations():
                await client.delete_automation(automation.id)
            return found

    with temporary_settings({PREFECT_API_URL: api}):
        deployments = {dep.name: dep for dep in asyncio.run(read_then_delete())}
    assert set(deployments) == {"sweep", "on-file", "backfill"}
    assert all(d.work_pool_name == "newsflow" for d in deployments.values())
    assert deployments["sweep"].schedules and deployments["sweep"].schedules[0].schedule.cron == "*/15 * * * *"
    assert deployments["backfill"].parameter_openapi_schema["properties"]["near_duplicate_threshold"]["maximum"] == 1.0
    assert deployments["on-file"].global_concurrency_limit.limit == 1
