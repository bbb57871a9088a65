"""Prefect flows: they compose the steps of `tasks` and own the I/O decisions.

`tasks` is imported first for its allocator policy (tasks/heap.py), which must be set
before polars loads; every flow module imports polars."""

import tasks  # noqa: F401
