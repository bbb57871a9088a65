"""tasks/process/memory.py: freed heap pages go back to the OS between batches and global steps, and
polars' and pyarrow's allocators give theirs back at once."""

from __future__ import annotations

import os
import subprocess
import sys

import psutil
import pytest

from tasks.process.memory import ALLOCATOR_ENV, allocator_settings, return_freed_memory
from tests.paths import REPO


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="malloc_trim is glibc's")
def test_pages_freed_between_live_objects_are_returned() -> None:
    # what a batch leaves behind: many paragraph-sized Python strings (> 512 bytes: glibc's
    # heap, not Python's small-object arenas) freed, a few still alive among them, so glibc
    # cannot shrink the heap from its top and keeps the pages
    def rss() -> int:
        return psutil.Process().memory_info().rss

    texts = [f"{i:08d}" * 250 for i in range(150_000)]  # 2 KB strings, ~300 MB
    survivors = texts[::100]
    del texts
    kept = rss()
    assert return_freed_memory() is True
    assert kept - rss() > 100 * 2**20  # at least 100 MB handed back
    assert len(survivors) == 1500


# A child process that sets the policy first, as a batch worker's initializer does. Prints the
# MB polars held for a frame, the MB still held after dropping it, the MB pyarrow handed back
# after dropping its arrays, and pyarrow's pool.
_ALLOCATE_AND_FREE = """
from tasks.process.memory import prefer_returning_memory, return_freed_memory
prefer_returning_memory()
import psutil, polars as pl, pyarrow as pa
rss = lambda: psutil.Process().memory_info().rss
base = rss()
frame = pl.select(pl.int_range(0, 40_000_000, dtype=pl.Int64).alias("x")).with_columns(y=pl.col("x") * 2)
held = rss() - base
del frame
kept = rss() - base
arrays = pa.concat_arrays([pa.array(range(5_000_000), type=pa.int64())] * 8)
before = rss()
del arrays
return_freed_memory()
print(held >> 20, kept >> 20, (before - rss()) >> 20, pa.default_memory_pool().backend_name)
"""


def _clean_env(**overrides: str) -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ALLOCATOR_ENV} | overrides


def _allocate_and_free(env: dict[str, str]) -> tuple[int, int, int, str]:
    out = subprocess.run(
        [sys.executable, "-c", _ALLOCATE_AND_FREE], env=env, cwd=REPO, capture_output=True, text=True, check=True
    )
    held, kept, returned, pool = out.stdout.split()
    return int(held), int(kept), int(returned), pool


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="malloc_trim is glibc's")
@pytest.mark.slow  # child processes
def test_with_the_policy_polars_and_pyarrow_give_freed_memory_back_at_once() -> None:
    held, kept, returned, pool = _allocate_and_free(_clean_env())
    assert held > 500  # two 40M-row Int64 columns
    assert kept < 100  # jemalloc returned the frame's pages when it was dropped
    assert pool == "system"
    assert returned > 200  # ~300 MB of Arrow buffers, freed to the OS (mimalloc keeps them)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="malloc_trim is glibc's")
@pytest.mark.slow  # child processes
def test_allocator_settings_in_the_environment_win() -> None:
    env = _clean_env(
        _RJEM_MALLOC_CONF="dirty_decay_ms:10000,muzzy_decay_ms:10000", ARROW_DEFAULT_MEMORY_POOL="mimalloc"
    )
    held, kept, _, pool = _allocate_and_free(env)
    assert kept > held // 2  # the user's choice: freed pages stay for reuse
    assert pool == "mimalloc"


def _effective_jemalloc_options(conf: str) -> dict[str, str]:
    """jemalloc's reading of a conf string: the last value of an option wins."""
    return dict(option.split(":", 1) for option in conf.split(",") if option)


@pytest.mark.parametrize(
    ("user_conf", "dirty_decay_ms"),
    [(None, "0"), ("narenas:2", "0"), ("dirty_decay_ms:300", "300")],
)
@pytest.mark.parametrize(
    "first", ["prefer_returning_memory(); import polars", "import polars; prefer_returning_memory()"]
)
def test_processes_started_after_the_policy_inherit_it_whenever_polars_loaded(
    first: str, user_conf: str | None, dirty_decay_ms: str
) -> None:
    # polars writes its own defaults into the variable when it loads: a policy set after
    # that must still reach the processes started later (their polars reads the variable)
    env = _clean_env(**({"_RJEM_MALLOC_CONF": user_conf} if user_conf else {}))
    code = f"import os; from tasks.process.memory import prefer_returning_memory; {first}; print(os.environ['_RJEM_MALLOC_CONF'])"
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO, capture_output=True, text=True, check=True)
    options = _effective_jemalloc_options(out.stdout.strip())
    assert options["dirty_decay_ms"] == dirty_decay_ms
    if user_conf is None or "decay" not in user_conf:
        assert options["muzzy_decay_ms"] == "0"


def test_batch_workers_run_with_the_policy_and_the_flow_process_without(monkeypatch: pytest.MonkeyPatch) -> None:
    from flows.runners import compute_pool, release_pool

    for name in ALLOCATOR_ENV:
        monkeypatch.delenv(name, raising=False)
    try:
        worker = compute_pool(1).submit(allocator_settings).result(timeout=120)
    finally:
        release_pool()
    assert _effective_jemalloc_options(worker["_RJEM_MALLOC_CONF"])["muzzy_decay_ms"] == "0"
    assert worker["arrow_pool"] == "system"
    assert "_RJEM_MALLOC_CONF" not in os.environ or "decay_ms:0" not in os.environ["_RJEM_MALLOC_CONF"]
    assert allocator_settings()["arrow_pool"] != "system"
