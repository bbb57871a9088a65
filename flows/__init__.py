"""Prefect flows: they compose the steps of `tasks` and own the I/O decisions.

`tasks` is imported first for its allocator policy (tasks/heap.py), which must be set
before polars loads in this process; flows/ingest.py imports it first too, for Prefect
loads that file by path."""

import tasks  # noqa: F401
