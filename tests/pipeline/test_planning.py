"""tasks/pipeline/planning.py: which files a run looks at; globs can never reach outside the seeds folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tasks.pipeline.planning import (
    UnsafeGlob,
    discover_files,
    glob_to_regex,
    plan_batches,
    plan_work,
    validate_glob,
)


@pytest.mark.parametrize(
    "glob",
    [
        "../../etc/*",
        "..",
        "../*.txt",
        "sub/../../x.txt",
        "**/../*",
        "..\\secret.txt",
        "/etc/passwd",
        "\\\\server\\share\\*.txt",
        "~/notes/*.txt",
        "C:/Windows/*.txt",
        "c:relative.txt",
        "",
        "   ",
        "a\x00b.txt",
        "a\nb.txt",
    ],
)
def test_unsafe_globs_are_refused_with_a_reason(glob: str) -> None:
    with pytest.raises(UnsafeGlob) as info:
        validate_glob(glob)
    assert "glob" in str(info.value)


@pytest.mark.parametrize("glob", ["**/*.txt", "2024/*.txt", "*.txt", "a..b/*.txt", "**/..x.txt"])
def test_ordinary_globs_are_accepted(glob: str) -> None:
    validate_glob(glob)
    glob_to_regex(glob)


def _tree(tmp_path: Path) -> tuple[Path, Path]:
    seeds, outside = tmp_path / "seeds", tmp_path / "outside"
    (seeds / "sub").mkdir(parents=True)
    outside.mkdir()
    (outside / "secret.txt").write_text("secret")
    (seeds / "a.txt").write_text("a")
    (seeds / "sub" / "b.txt").write_text("b")
    (seeds / ".hidden.txt").write_text("h")
    (seeds / "c.txt.part").write_text("p")
    (seeds / "escape").symlink_to(outside, target_is_directory=True)
    (seeds / "escape.txt").symlink_to(outside, target_is_directory=True)
    (seeds / "link.txt").symlink_to(outside / "secret.txt")
    (seeds / "dir.txt").mkdir()
    return seeds, outside


def test_symlinked_folders_are_never_entered_and_links_are_reported_not_followed(tmp_path: Path) -> None:
    seeds, _ = _tree(tmp_path)
    names = [f.source_file for f in discover_files(seeds, "**/*.txt")]
    assert names == ["a.txt", "dir.txt", "escape.txt", "link.txt", "sub/b.txt"]
    assert not any("secret" in n for n in names)
    # even a glob naming the linked folder finds nothing through it
    assert discover_files(seeds, "escape/*.txt") == []
    assert discover_files(seeds, "**") and all("secret" not in f.source_file for f in discover_files(seeds, "**"))


def test_sizes_are_of_the_entry_itself_not_a_link_target(tmp_path: Path) -> None:
    seeds, _ = _tree(tmp_path)
    sizes = {f.source_file: f.n_bytes for f in discover_files(seeds)}
    assert sizes["a.txt"] == 1
    assert sizes["link.txt"] == os.lstat(seeds / "link.txt").st_size


def test_names_that_are_not_utf8_are_shown_escaped(tmp_path: Path) -> None:
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    with open(os.path.join(os.fsencode(seeds), b"bad\xff.txt"), "wb") as fh:
        fh.write(b"x")
    assert [f.source_file for f in discover_files(seeds)] == ["bad\\xff.txt"]


def test_batches_group_by_bytes_and_a_big_file_is_alone() -> None:
    from tasks.pipeline.planning import DiscoveredFile

    files = [DiscoveredFile("a", 5), DiscoveredFile("b", 5), DiscoveredFile("big", 100), DiscoveredFile("c", 1)]
    assert [[f.source_file for f in b] for b in plan_batches(files, 10)] == [["a", "b"], ["big"], ["c"]]


def _files(*sizes: int):
    from tasks.pipeline.planning import DiscoveredFile

    return [DiscoveredFile(f"f{i:03d}", n) for i, n in enumerate(sizes)]


def test_a_work_plan_groups_consecutive_batches_into_task_runs_by_bytes() -> None:
    kib, mib = 1 << 10, 1 << 20
    plan = plan_work(_files(*[100 * kib] * 1000), batch_bytes=8 * mib, task_bytes=32 * mib, workers=2)
    # 97.7 MiB needs 13 batches of 8 MiB; 14 equal ones keep both workers busy to the end
    assert len(plan.batches) == 14
    assert max(plan.batch_sizes) - min(plan.batch_sizes) <= 100 * kib and max(plan.batch_sizes) <= 8 * mib
    assert plan.tasks == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11], [12, 13]]
    assert all(plan.bytes_of(t) <= 32 * mib for t in range(4))
    assert [f for b in plan.batches for f in b] == [f"f{i:03d}" for i in range(1000)]  # file order kept
    assert plan.files_of(3) == plan.batches[12:14]
    assert plan.workers == 2


@settings(deadline=None)
@given(
    sizes=st.lists(st.integers(min_value=0, max_value=3000), max_size=300),
    limit=st.integers(min_value=1, max_value=20_000),
    cores=st.integers(min_value=1, max_value=8),
)
def test_batches_keep_every_file_once_in_order_and_stay_under_the_limit(
    sizes: list[int], limit: int, cores: int
) -> None:
    batches = plan_batches(_files(*sizes), limit, cores)
    assert [f.source_file for b in batches for f in b] == [f.source_file for f in _files(*sizes)]
    assert all(b for b in batches)
    assert all(len(b) == 1 or sum(f.n_bytes for f in b) <= limit for b in batches)


@settings(deadline=None, max_examples=40)
@given(
    sizes=st.lists(st.integers(min_value=1, max_value=10), min_size=1000, max_size=2000),
    batches_wanted=st.integers(min_value=1, max_value=12),
    cores=st.integers(min_value=1, max_value=4),
)
def test_small_files_make_equal_batches_a_multiple_of_the_cores(
    sizes: list[int], batches_wanted: int, cores: int
) -> None:
    """The workers run out of batches together: no last batch runs alone on one core."""
    limit = sum(sizes) // batches_wanted
    sizes_of = [sum(f.n_bytes for f in b) for b in plan_batches(_files(*sizes), limit, cores)]
    assert len(sizes_of) >= batches_wanted
    assert len(sizes_of) % cores == 0 or len(sizes_of) < cores  # fewer than the cores run all at once
    assert max(sizes_of) - min(sizes_of) <= 2 * 10  # a file either side of a cut


def test_a_tiny_batch_limit_packs_in_linear_time() -> None:
    """`batch_bytes=1` (every file alone) must not make one empty group per byte of input."""
    batches = plan_batches(_files(*[1 << 20] * 10), 1, cores=2)
    assert [len(b) for b in batches] == [1] * 10


def test_a_small_input_gets_one_batch_a_core_in_one_task_run() -> None:
    kib = 1 << 10
    plan = plan_work(_files(*[100 * kib] * 100), batch_bytes=8 << 20, task_bytes=32 << 20, workers=2)
    assert len(plan.batches) == 2 and plan.workers == 2  # ~10 MB: both cores busy, no more spill files than needed
    assert plan.tasks == [[0, 1]]
    tiny = plan_work(_files(*[100 * kib] * 10), batch_bytes=8 << 20, task_bytes=32 << 20, workers=2)
    assert len(tiny.batches) == 1 and tiny.workers == 1  # 1 MB: below the smallest batch worth a worker


def test_on_a_cluster_task_runs_are_balanced_like_batches_so_every_worker_gets_some() -> None:
    kib = 1 << 10
    plan = plan_work(_files(*[100 * kib] * 100), batch_bytes=8 << 20, task_bytes=32 << 20, workers=2, distributed=True)
    assert len(plan.tasks) >= 4 * 2
    assert sorted(b for t in plan.tasks for b in t) == list(range(len(plan.batches)))


def test_a_file_bigger_than_a_batch_is_a_batch_alone_and_one_batch_has_one_worker() -> None:
    plan = plan_work(_files(50 << 20), batch_bytes=8 << 20, task_bytes=32 << 20, workers=2)
    assert plan.batches == [["f000"]] and plan.tasks == [[0]] and plan.workers == 1
