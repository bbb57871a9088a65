"""Shared fixtures: the reference seeds, ../shared, and one Prefect test harness per session."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest

from flows.settings import configure_prefect_environment
from tests.paths import SEEDS, SHARED

configure_prefect_environment()


@pytest.fixture(scope="session")
def seeds_dir() -> Path:
    return SEEDS


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not (SHARED / "eval").is_dir():
        pytest.fail(f"the evaluation data is missing: expected {SHARED}/eval beside the repository (../shared)")
    return SHARED


@pytest.fixture(scope="session")
def prefect_harness():
    """A real Prefect API (temporary SQLite database) for every flow test of the session."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield


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


os.environ.setdefault("NEWSFLOW_TESTING", "1")
