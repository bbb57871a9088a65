"""tasks/heap.py: freed heap pages go back to the OS between batches and global steps."""

from __future__ import annotations

import sys

import psutil
import pytest

from tasks.heap import return_freed_memory


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="malloc_trim is glibc's")
def test_pages_freed_between_live_objects_are_returned() -> None:
    # what a batch leaves behind: many paragraph-sized Python strings (> 512 bytes: glibc's
    # heap, not Python's small-object arenas) freed, a few still alive among them, so glibc
    # cannot shrink the heap from its top and keeps the pages
    rss = lambda: psutil.Process().memory_info().rss  # noqa: E731
    texts = [f"{i:08d}" * 250 for i in range(150_000)]  # 2 KB strings, ~300 MB
    survivors = texts[::100]
    del texts
    kept = rss()
    assert return_freed_memory() is True
    assert kept - rss() > 100 * 2**20  # at least 100 MB handed back
    assert len(survivors) == 1500
