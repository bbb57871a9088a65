"""Tests (and examples of use) for flows/cli.py: `newsflow` answers help, version and bad
arguments at once, with one line naming the argument, and touches nothing."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.paths import SEEDS
from tests.prefect_server import VENV_BIN

pytestmark = pytest.mark.slow  # every test runs `newsflow` as a child process


def newsflow(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    return subprocess.run(
        [str(VENV_BIN / "newsflow"), *args], capture_output=True, text=True, timeout=60, env=env, cwd=cwd
    )


def test_help_and_version_answer_without_importing_prefect() -> None:
    done = newsflow("--help")
    assert done.returncode == 0 and "run" in done.stdout and "backfill" in done.stdout
    assert newsflow("--version").stdout.startswith("newsflow ")
    code = "import sys, flows.cli; print('prefect' in sys.modules, 'polars' in sys.modules)"
    imported = subprocess.run([str(VENV_BIN / "python"), "-c", code], capture_output=True, text=True, check=True)
    assert imported.stdout.split() == ["False", "False"]


def test_run_options_are_flags_and_all_described() -> None:
    help_text = newsflow("run", "--help").stdout
    assert "--full-refresh" in help_text and "--no-full-refresh" in help_text
    assert newsflow("run", "--full-refresh", "true").returncode == 2  # a flag takes no value


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--seeds", "{tmp}/missing"], "seeds folder '{tmp}/missing' does not exist"),
        (["--seeds", "{tmp}/a-file"], "seeds folder '{tmp}/a-file' is a file, not a folder"),
        (["--data", "{tmp}/a-file"], "data folder '{tmp}/a-file' is a file, not a folder"),
        (["--data", "s3:/bucket"], "data folder 's3:/bucket' is not a path nor a filesystem URI"),
        (["--data", "://bucket"], "data folder '://bucket' is not a path nor a filesystem URI"),
        (["--data", "nosuchscheme://bucket/x"], "no filesystem knows the scheme 'nosuchscheme'"),
        (["--glob", "../*.txt"], "glob '../*.txt' climbs out of the seeds folder"),
        (["--glob", "/etc/*"], "glob '/etc/*' is absolute"),
        (["--runner", "spark"], "--runner 'spark' is not one of: local, dask"),
    ],
)
def test_a_bad_argument_is_one_line_exit_2_and_touches_nothing(tmp_path: Path, args: list[str], expected: str) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    defaults = {"--seeds": str(SEEDS), "--data": str(tmp_path / "data")}
    given = [a.format(tmp=tmp_path) for a in args]
    for option, value in defaults.items():
        if option not in given:
            given += [option, value]
    done = newsflow("run", *given, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and expected.format(tmp=tmp_path) in done.stderr
    assert done.stdout == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]  # no data folder, no .prefect


def test_backfill_without_a_server_says_so_in_one_line(tmp_path: Path) -> None:
    env_port = {"NEWSFLOW_SERVER_PORT": "9"}  # nothing listens on the discard port
    done = subprocess.run(
        [str(VENV_BIN / "newsflow"), "backfill", "--no-wait"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**{k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}, **env_port},
        cwd=tmp_path,
    )
    assert done.returncode == 2
    assert "no Prefect server answers at http://127.0.0.1:9/api" in done.stdout + done.stderr
