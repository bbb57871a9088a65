"""Hostile parameters through the real command line: a glob that escapes the seeds folder
is refused with a clear message and nothing is read or written."""

from __future__ import annotations

import pytest

from tests.faults.harness import copy_seeds, run

pytestmark = [pytest.mark.faults, pytest.mark.timeout(300)]


def test_a_glob_escaping_the_seeds_folder_is_refused(suite_env, tmp_path) -> None:
    glob = "../../etc/*"  # absolute globs and the other forms: tests/pipeline/test_planning.py
    seeds, data = tmp_path / "seeds", tmp_path / "data"
    copy_seeds(seeds)
    result = run(
        ["run", "--seeds", str(seeds), "--data", str(data), "--glob", glob],
        suite_env,
        tmp_path / "logs",
        "glob",
        timeout=240,
    )
    assert result.returncode != 0
    assert f"glob {glob!r} climbs out of the seeds folder with '..'; refused" in result.output, result.describe()
    assert not data.exists() or not list(data.rglob("*.parquet"))
