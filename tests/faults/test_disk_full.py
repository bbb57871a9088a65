"""A full disk, for real: the data folder on a 1 MB tmpfs (mounted in a private mount
namespace), a 3 MB input. The run fails in one line (which folder, how much was free,
nothing committed), removes its staged files at once, and writes no dataset."""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

import pytest

from tests.faults.harness import NEWSFLOW, child_env

pytestmark = [pytest.mark.faults, pytest.mark.timeout(600)]


def test_a_full_disk_fails_the_run_in_one_line_and_leaves_nothing_behind(suite_env, tmp_path: Path) -> None:
    corpus, data, out = tmp_path / "corpus", tmp_path / "data", tmp_path / "out"
    data.mkdir()
    out.mkdir()
    env = child_env(suite_env)
    subprocess.run(
        [NEWSFLOW, "bench", "generate", "--size", "3MB", "--seed", "2", "--out", str(corpus)], env=env, check=True
    )
    q = shlex.quote
    script = f"""
        mount -t tmpfs -o size=1m tmpfs {q(str(data))} || exit 90
        {q(NEWSFLOW)} run --seeds {q(str(corpus))} --data {q(str(data))} > {q(str(out / "stdout"))} 2> {q(str(out / "stderr"))}
        echo $? > {q(str(out / "rc"))}
        (cd {q(str(data))} && find . -mindepth 1 | sort) > {q(str(out / "left"))}
    """
    as_root = [] if os.geteuid() == 0 else ["--map-root-user"]  # a user namespace may mount a tmpfs too
    done = subprocess.run(
        ["unshare", "--mount", *as_root, "sh", "-c", script], env=env, capture_output=True, text=True, timeout=540
    )
    assert done.returncode == 0, f"could not mount a tmpfs for the test: {done.stderr}"
    assert (out / "rc").read_text().strip() == "4", (out / "stderr").read_text()[-3000:]
    said = [line for line in (out / "stderr").read_text().splitlines() if line.startswith("newsflow: ")]
    assert len(said) == 1
    assert f"no space left writing to the data folder {data} (" in said[0] and "MB free of 1.0 MB" in said[0]
    assert "nothing was committed" in said[0]
    assert "Traceback" not in (out / "stderr").read_text()
    assert (out / "left").read_text().split() in ([], ["./_staging"])  # staged and spilled files removed at once
