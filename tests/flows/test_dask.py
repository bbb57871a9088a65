"""runner="dask": the per-batch steps on a 2-worker Dask LocalCluster through prefect-dask,
against a real Prefect server — the same datasets as the local runner, byte for byte."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest

from tests.prefect_server import VENV_BIN


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


@pytest.mark.slow
def test_dask_runner_gives_the_local_runners_datasets_on_a_3mb_corpus(tmp_path: Path, prefect_api) -> None:
    corpus = tmp_path / "corpus"
    env = prefect_api[1]
    _newsflow("bench", "generate", "--size", "3MB", "--seed", "1", "--out", str(corpus), env=env)
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


def test_dask_runner_is_refused_without_a_server_its_workers_can_reach() -> None:
    # Dask workers are other processes: under Prefect's temporary in-process API each would
    # start a server of its own. (`newsflow run` always has one: PREFECT_API_URL or the
    # project's local server.)
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.runners import require_real_server_for_dask

    with temporary_settings(restore_defaults={PREFECT_API_URL}), pytest.raises(ValueError, match="PREFECT_API_URL"):
        require_real_server_for_dask()
    with temporary_settings({PREFECT_API_URL: "http://127.0.0.1:4200/api"}):
        require_real_server_for_dask()
