"""flows/serve.py + flows/watch.py end to end: a real Prefect server, `newsflow serve` as a
child process, real files dropped into a real folder, runs read back through the client."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from pathlib import Path

import polars as pl
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    DeploymentFilter,
    DeploymentFilterName,
    FlowRunFilter,
    FlowRunFilterId,
)
from prefect.deployments import run_deployment
from prefect.settings import PREFECT_API_URL, temporary_settings

from tasks.schema import FILES, OCCURRENCES, STATUS_PROCESSED, C
from tasks.storage.parquet import read_dataset
from tests.conftest import SEEDS
from tests.prefect_server import VENV_BIN, newsflow_serve

pytestmark = pytest.mark.slow
SWEEP_SECONDS = 45


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, prefect_api):
    """`newsflow serve` on the session's server, over a folder of its own."""
    root = tmp_path_factory.mktemp("served")
    seeds, data = root / "seeds", root / "data"
    seeds.mkdir()
    api, env = prefect_api
    with temporary_settings({PREFECT_API_URL: api}):
        args = ["--seeds", str(seeds), "--data", str(data), "--sweep-interval", str(SWEEP_SECONDS)]
        with newsflow_serve(env, args, root / "serve.log") as proc:
            asyncio.run(_wait_for_deployments(["sweep", "on-file", "backfill"], proc))
            yield seeds, data, root


async def _wait_for_deployments(names: list[str], proc, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    async with get_client() as client:
        while time.monotonic() < deadline:
            assert proc.poll() is None, "newsflow serve exited early"
            found = await client.read_deployments(
                deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=names))
            )
            if len(found) == len(names):
                return
            await asyncio.sleep(1)
    raise TimeoutError("deployments were not registered")


async def _runs_of(deployment: str) -> list:
    async with get_client() as client:
        (dep,) = await client.read_deployments(
            deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=[deployment]))
        )
        return await client.read_flow_runs(deployment_filter=DeploymentFilter(id={"any_": [dep.id]}))


async def _wait_runs_final(deployment: str, at_least: int, timeout: float) -> list:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = await _runs_of(deployment)
        if len(runs) >= at_least and all(r.state and r.state.is_final() for r in runs):
            return runs
        await asyncio.sleep(1)
    raise TimeoutError(
        f"{deployment}: fewer than {at_least} finished runs after {timeout:.0f}s: {[(r.name, r.state_name) for r in await _runs_of(deployment)]}"
    )


async def _logs_of(flow_run_id) -> list[str]:
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    async with get_client() as client:
        logs = await client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
    return [log.message for log in logs]


def _no_duplicate_rows(data: Path) -> None:
    occ = read_dataset(data, OCCURRENCES)
    assert occ.height == occ.unique([C.source_file, C.ordinal]).height
    files = read_dataset(data, FILES)
    assert files.height == files.unique(C.source_file).height


def test_a_file_dropped_in_the_folder_is_ingested_by_an_on_file_run(served) -> None:
    seeds, data, _ = served
    landed = time.monotonic()
    shutil.copy(SEEDS / "003_cdf2a856273f76b8.txt", seeds / "003_cdf2a856273f76b8.txt")
    (seeds / "partial.txt.part").write_text("still downloading")
    (seeds / ".hidden.txt").write_text("hidden")
    runs = asyncio.run(_wait_runs_final("on-file", 1, timeout=120))
    latency = time.monotonic() - landed
    run = runs[0]
    assert run.state.is_completed(), run.state
    assert run.name.startswith("on-file-003_cdf2a856273f76b8.txt-")
    assert run.parameters["files"] == ["003_cdf2a856273f76b8.txt"]
    files = read_dataset(data, FILES)
    assert files.get_column(C.source_file).to_list() == ["003_cdf2a856273f76b8.txt"]
    assert files.get_column(C.status).to_list() == [STATUS_PROCESSED]

    async def artifacts():
        async with get_client() as client:
            return await client.read_artifacts(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run.id])))

    keys = {a.key for a in asyncio.run(artifacts())}
    assert {"ingest-files", "ingest-summary"} <= keys
    print(f"\nfile landing -> rows in data/: {latency:.1f} s")


def test_backfill_runs_with_ui_parameters_and_rejects_bad_ones(served, prefect_api) -> None:
    seeds, data, root = served
    for p in sorted(SEEDS.glob("00[0-2]_*.txt")):
        shutil.copy(p, seeds / p.name)
    cli = [str(VENV_BIN / "newsflow"), "backfill", "--glob", "00*.txt", "--near-duplicate-threshold", "0.7", "--wait"]
    good = subprocess.run(cli, env=prefect_api[1], capture_output=True, text=True, timeout=240)
    assert good.returncode == 0, good.stdout + good.stderr
    assert f"{prefect_api[0].removesuffix('/api')}/runs/flow-run/" in good.stdout and "Completed" in good.stdout
    assert "\nbackfill-00_.txt-" in good.stdout  # the run's name: the glob, made safe to show
    assert read_dataset(data, FILES).height >= 3
    bad_glob = run_deployment("ingest/backfill", parameters={"glob": "../../etc/*"}, timeout=180)
    assert bad_glob.state.is_failed()
    assert bad_glob.state.message == "glob '../../etc/*' climbs out of the seeds folder with '..'; refused"
    assert "/" not in bad_glob.name and ".." not in bad_glob.name  # backfill-etc_-<time>
    logs = asyncio.run(_logs_of(bad_glob.id))
    deadline = time.monotonic() + 60  # the run's process sends its last logs as it exits
    while sum("climbs out of the seeds folder" in line for line in logs) < 2 and time.monotonic() < deadline:
        time.sleep(1)
        logs = asyncio.run(_logs_of(bad_glob.id))
    assert logs and not any("Traceback" in line for line in logs)
    assert sum("climbs out of the seeds folder" in line for line in logs) == 2  # the error, then the final state
    assert "Traceback" not in (root / "serve.log").read_text()  # nor in the terminal of `newsflow serve`
    with pytest.raises(Exception, match="near_duplicate_threshold"):
        run_deployment("ingest/backfill", parameters={"near_duplicate_threshold": 1.5}, timeout=60)


def test_two_runs_at_once_never_overlap(served) -> None:
    _, data, _ = served
    first = run_deployment("ingest/backfill", parameters={"full_refresh": True}, timeout=0)
    second = run_deployment("ingest/backfill", parameters={"full_refresh": True}, timeout=0)

    async def both_final():
        async with get_client() as client:
            deadline = time.monotonic() + 180
            while time.monotonic() < deadline:
                runs = [await client.read_flow_run(r.id) for r in (first, second)]
                if all(r.state.is_final() for r in runs):
                    return runs
                await asyncio.sleep(0.5)
        raise TimeoutError("runs did not finish")

    async def states_of(flow_run_id) -> list[str]:
        async with get_client() as client:
            return [s.name for s in await client.read_flow_run_states(flow_run_id)]

    a, b = asyncio.run(both_final())
    assert a.state.is_completed() and b.state.is_completed()
    earlier, later = sorted((a, b), key=lambda r: r.start_time)
    assert later.start_time >= earlier.end_time, "the two runs overlapped"
    # what held the later one back: the deployment's concurrency limit, before it started
    assert "AwaitingConcurrencySlot" in asyncio.run(states_of(later.id))
    _no_duplicate_rows(data)


def test_a_burst_of_200_files_makes_a_handful_of_runs(served) -> None:
    seeds, data, root = served
    before = len(asyncio.run(_runs_of("on-file")))
    template = (SEEDS / "000_679cc89de41e4925.txt").read_text(encoding="utf-8")
    staging = root / "burst"
    staging.mkdir()
    for i in range(200):
        (staging / f"burst_{i:03d}.txt").write_text(
            template.replace("Release time:May 17", f"Release time:May {1 + i % 28}"), encoding="utf-8"
        )
    for p in sorted(staging.iterdir()):
        p.rename(seeds / p.name)  # like an rsync: each file appears complete
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        files = read_dataset(data, FILES)
        done = files.filter(pl.col(C.source_file).str.starts_with("burst_")).height
        if done == 200:
            break
        time.sleep(2)
    runs = asyncio.run(_wait_runs_final("on-file", before + 1, timeout=120))
    burst_runs = len(runs) - before
    print(f"\n200-file burst -> {burst_runs} on-file runs")
    assert done == 200
    assert 1 <= burst_runs <= 5
    _no_duplicate_rows(data)


def test_the_schedule_produces_sweep_runs(served) -> None:
    deadline = time.monotonic() + SWEEP_SECONDS * 6
    completed: list = []
    while not completed and time.monotonic() < deadline:
        completed = [r for r in asyncio.run(_runs_of("sweep")) if r.state and r.state.is_completed()]
        time.sleep(2)
    assert completed, "no scheduled sweep run completed"
    assert all(r.name.startswith("sweep-") for r in completed)
    assert all(r.auto_scheduled for r in completed)
