"""runner="dask": the per-batch steps on a 2-worker Dask LocalCluster through prefect-dask,
against a real Prefect server — the same datasets as the local runner, byte for byte."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest

from tests.prefect_server import VENV_BIN, prefect_server

pytestmark = pytest.mark.slow


def _digest(data: Path) -> dict[str, str]:
    # the manifest records the run id and time, so it is compared by content below instead
    return {
        p.relative_to(data).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(data.rglob("*.parquet"))
        if not p.relative_to(data).as_posix().startswith("files/")
    }


def _newsflow(*args: str, env: dict[str, str], timeout: float = 900) -> str:
    done = subprocess.run([str(VENV_BIN / "newsflow"), *args], env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def test_dask_runner_gives_the_local_runners_datasets_on_the_10mb_corpus(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    with prefect_server(tmp_path / "home", tmp_path / "server.log") as (_, env):
        _newsflow("bench", "generate", "--size", "10MB", "--seed", "1", "--out", str(corpus), env=env)
        seeds = corpus / "seeds"
        _newsflow("run", "--seeds", str(seeds), "--data", str(tmp_path / "local"), "--batch-mb", "1", env=env)
        out = _newsflow(
            "run",
            "--seeds",
            str(seeds),
            "--data",
            str(tmp_path / "dask"),
            "--batch-mb",
            "1",
            "--runner",
            "dask",
            "--workers",
            "2",
            env=env,
        )
    assert "article occurrences" in out
    local, dask = _digest(tmp_path / "local"), _digest(tmp_path / "dask")
    assert len(local) > 10
    assert local == dask
    import polars as pl

    files = [
        pl.read_parquet(tmp_path / d / "files", hive_partitioning=True)
        .drop("run_id", "processed_at")
        .sort("source_file")
        for d in ("local", "dask")
    ]
    assert files[0].equals(files[1])


def test_dask_runner_refuses_to_run_without_a_prefect_server(tmp_path: Path, seeds_copy: Path) -> None:
    import os

    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env["PREFECT_HOME"] = str(tmp_path / "home")
    done = subprocess.run(
        [
            str(VENV_BIN / "newsflow"),
            "run",
            "--seeds",
            str(seeds_copy),
            "--data",
            str(tmp_path / "d"),
            "--runner",
            "dask",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode != 0
    assert "PREFECT_API_URL" in done.stdout + done.stderr
