"""Hand freed heap memory back to the operating system (process hygiene, no data logic).

Three allocators hold a batch's memory: glibc (Python objects), polars' jemalloc and
pyarrow's memory pool. Left at their defaults, all three keep freed pages for reuse, and kept
pages only add to a process's peak RSS:

- `return_freed_memory` trims glibc's heap after a batch and after the global steps (at 1 GB
  of input the flow kept ~360 MB after near-duplicate verification without it).
- `prefer_returning_memory`, the batch workers' initializer, makes polars' jemalloc and
  pyarrow's pool give pages back at once (six 8 MB batches in one process: peak RSS 511-522
  -> 423 MB for the same CPU). The flow process keeps the defaults: its global steps
  allocate and free partitions of hundreds of MB, and returning each at once cost them ~20 %
  more CPU for a peak that is not the run's.
"""

from __future__ import annotations

import ctypes
import os
import sys

# jemalloc reads its options once, when polars loads. polars' __init__ writes its defaults
# into the variable, then appends what was set before: the last value of an option wins.
POLARS_JEMALLOC_DEFAULTS = "dirty_decay_ms:500,muzzy_decay_ms:1000"
RETURN_AT_ONCE = "dirty_decay_ms:0,muzzy_decay_ms:0"
ALLOCATOR_ENV = {
    "_RJEM_MALLOC_CONF": RETURN_AT_ONCE,
    "ARROW_DEFAULT_MEMORY_POOL": "system",  # glibc: trimmed by return_freed_memory as well
}


def prefer_returning_memory() -> None:
    """Make polars' and pyarrow's allocators return freed pages at once, in this process
    and in the processes it starts; call it before polars loads (a process pool's
    initializer runs before the first task imports the steps). A decay or a pool a user
    set in the environment wins. If polars is already loaded, its jemalloc keeps the
    defaults in this process; pyarrow's pool is switched at once."""
    conf = os.environ.get("_RJEM_MALLOC_CONF", "")
    if "decay_ms" not in conf.replace(POLARS_JEMALLOC_DEFAULTS, ""):  # unset, or polars' own
        os.environ["_RJEM_MALLOC_CONF"] = f"{conf},{RETURN_AT_ONCE}" if conf else RETURN_AT_ONCE
    pool = os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", ALLOCATOR_ENV["ARROW_DEFAULT_MEMORY_POOL"])
    if "pyarrow" in sys.modules and pool == "system":
        import pyarrow as pa

        pa.set_memory_pool(pa.system_memory_pool())


def allocator_settings() -> dict[str, str]:
    """What this process's allocators were told: jemalloc's options (last wins) and the
    backend of pyarrow's default pool."""
    import pyarrow as pa

    return {
        "_RJEM_MALLOC_CONF": os.environ.get("_RJEM_MALLOC_CONF", ""),
        "arrow_pool": pa.default_memory_pool().backend_name,
    }


def _libc_malloc_trim():
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc (macOS, musl): nothing to trim
        return None


_MALLOC_TRIM = _libc_malloc_trim()


def return_freed_memory() -> bool:
    """Trim the C heap; False where there is no malloc_trim. (No gc.collect: reference
    counting has already freed the lists and strings in question, and a collection of a
    process holding Prefect's objects cost ~0.13-0.28 s a call.)"""
    if _MALLOC_TRIM is None:
        return False
    _MALLOC_TRIM(0)
    return True
