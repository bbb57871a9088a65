"""Tests (and examples of use) for bench/cli.py: `newsflow bench` refuses a bad argument at
once, in one line naming it, before any corpus is generated or run."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.flows.test_cli import newsflow

pytestmark = pytest.mark.slow  # every test runs `newsflow` as a child process


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["generate", "--size", "10XB", "--out", "{tmp}/corpus"], "--size not a size: '10XB'"),
        (["generate", "--size", "1MB", "--out", "{tmp}/a-file"], "--out {tmp}/a-file is a file; give a folder"),
        (["run", "--sizes", "1MB,,1TB", "--corpus-root", "{tmp}/bench"], "--sizes not a size: '1TB'"),
        (["entities", "--extractor", "no_such_module"], "--extractor no_such_module: No module named"),
        (["entities", "--extractor", "bench.entities:no_such_function"], "has no attribute 'no_such_function'"),
    ],
)
def test_a_bad_argument_is_one_line_exit_2_and_touches_nothing(tmp_path: Path, args: list[str], expected: str) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    done = newsflow("bench", *(a.format(tmp=tmp_path) for a in args), cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and expected.format(tmp=tmp_path) in done.stderr, done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]
