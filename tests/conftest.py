"""Shared fixtures: the reference seeds, ../shared, and ONE real Prefect server per session
(`prefect server start`: every flow run of the session, in-process or in a child process,
is recorded by it; starting one costs ~10-20 s, so it is started once)."""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from flows.settings import configure_prefect_environment
from tests.paths import SEEDS, SHARED

configure_prefect_environment()
# Flows run by these tests draw no data-quality report (~3 s a run: matplotlib and 16 charts):
# the report's own tests switch it on (tests/flows/test_report.py, tests/report/); the
# `newsflow run` children of the fault suite run with it (their environment drops NEWSFLOW_*).
os.environ.setdefault("NEWSFLOW_REPORT", "off")


@pytest.fixture(scope="session")
def seeds_dir() -> Path:
    return SEEDS


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not (SHARED / "eval").is_dir():
        pytest.fail(f"the evaluation data is missing: expected {SHARED}/eval beside the repository (../shared)")
    return SHARED


_BOOTING: dict[str, object] = {}  # the session's Prefect server, started as the session starts


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    """When any test of the session needs the Prefect server, start it now: it boots while
    the tests that need none run (tests/steps, tests/storage, ... come first: pyproject's
    testpaths)."""
    if any("prefect_api" in item.fixturenames for item in items):
        import tempfile

        from tests.prefect_server import start_prefect_server

        root = Path(tempfile.mkdtemp(prefix="newsflow-prefect-"))
        _BOOTING["server"] = start_prefect_server(root / "home", root / "server.log")
        _BOOTING["root"] = root


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """A server started for tests that never ran (the session stopped early) stops too."""
    if "server" in _BOOTING:
        _BOOTING["server"].stop()  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
def prefect_api() -> Iterator[tuple[str, dict[str, str]]]:
    """(API URL, environment for child processes) of the session's Prefect server."""
    server = _BOOTING["server"]
    api, env = server.ready()  # type: ignore[attr-defined]
    try:
        yield api, env
        # Send this process's last logs and events while the server still answers (else
        # their workers retry against a closed port at exit).
        from prefect.events.worker import EventsWorker
        from prefect.logging.handlers import APILogWorker

        APILogWorker.drain_all(timeout=10)
        EventsWorker.drain_all(timeout=10)
    finally:
        server.stop()  # type: ignore[attr-defined]
        shutil.rmtree(_BOOTING["root"], ignore_errors=True)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def prefect_harness(prefect_api):
    """Flows called in this process report to the session's server (without Prefect's
    heartbeat thread, whose join costs ~1 s a run, as `newsflow run` does)."""
    from prefect.settings import PREFECT_API_URL, PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    with temporary_settings({PREFECT_API_URL: prefect_api[0], PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        yield


@pytest.fixture(scope="session")
def seeded(tmp_path_factory: pytest.TempPathFactory, prefect_harness) -> tuple[Path, Path, dict]:
    """(seeds, data, summary) of one `ingest` run over a copy of the reference seeds, shared
    by the tests that only read its datasets."""
    from flows.ingest import ingest

    root = tmp_path_factory.mktemp("seeded")
    seeds, data = root / "seeds", root / "data"
    shutil.copytree(SEEDS, seeds)
    return seeds, data, ingest(seeds_dir=str(seeds), data_dir=str(data))


@pytest.fixture(scope="session")
def seeded_data(seeded) -> Path:
    return seeded[1]


@pytest.fixture
def seeds_copy(tmp_path: Path) -> Path:
    """A private copy of the reference seeds that a test may change."""
    target = tmp_path / "seeds"
    shutil.copytree(SEEDS, target)
    return target


@pytest.fixture
def memory_uri(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A fresh data dir on fsspec's in-memory filesystem: a non-local store without rename
    or fsync, standing in for an object store. Host-local scratch (locks, spill) goes to
    tmp_path; the in-memory tree is removed afterwards."""
    import uuid

    import fsspec

    monkeypatch.setenv("NEWSFLOW_CACHE_DIR", str(tmp_path / "cache"))
    bucket = f"newsflow-test-{uuid.uuid4().hex[:12]}"
    yield f"memory://{bucket}/data"
    memory = fsspec.filesystem("memory")
    if memory.exists(f"/{bucket}"):
        memory.rm(f"/{bucket}", recursive=True)


def tree_digest(data: Path) -> dict[str, str]:
    """sha256 of every Parquet file under `data`, by relative path: datasets compared byte for byte."""
    return {
        p.relative_to(data).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(data.rglob("*.parquet"))
    }


def without_manifest(digest: dict[str, str]) -> dict[str, str]:
    """The `files` manifest records run ids and times; every other file is deterministic."""
    return {k: v for k, v in digest.items() if not k.startswith("files/")}


def seed_text(name_prefix: str) -> str:
    (path,) = SEEDS.glob(f"{name_prefix}_*.txt")
    return path.read_text(encoding="utf-8")
