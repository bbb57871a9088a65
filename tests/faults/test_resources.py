"""Resource limits: memory stays bounded however big the input. Peak RSS is measured on a
real `newsflow run` child (its whole process tree, sampled every 50 ms)."""

from __future__ import annotations

import pytest

from tasks.schema import FILES, STATUS_PROCESSED, C
from tests.faults.harness import STATS, read_polars, run

pytestmark = [pytest.mark.faults, pytest.mark.timeout(600)]

N_SMALL = 10_000


def test_ten_thousand_small_files_in_bounded_memory_and_time(suite_env, tmp_path) -> None:
    seeds = tmp_path / "seeds"
    for folder in range(100):
        (seeds / f"d{folder:02d}").mkdir(parents=True)
    for i in range(N_SMALL):
        (seeds / f"d{i % 100:02d}" / f"page-{i:05d}.txt").write_text(
            f"District {i % 97} notice number {i}\nRelease time:May {1 + i % 28}, 2024 {i % 24}:{i % 60:02d} PM\n\n"
            f"The office of district {i % 97} announced measure {i} for street {i * 7 % 1000}. Residents welcomed it.\n",
            encoding="utf-8",
        )
    result = run(
        ["run", "--seeds", str(seeds), "--data", str(tmp_path / "data")],
        suite_env,
        tmp_path / "logs",
        "small",
        timeout=500,
    )
    assert result.returncode == 0, result.describe()
    files = read_polars(tmp_path / "data", FILES)
    assert files.height == N_SMALL
    assert files.filter(files[C.status] == STATUS_PROCESSED).height == N_SMALL
    STATS.rss_mb[f"{N_SMALL:,} small files"] = result.max_rss_mb
    STATS.wall_s[f"{N_SMALL:,} small files (one run)"] = result.wall_seconds
    assert result.max_rss_mb < 2048
