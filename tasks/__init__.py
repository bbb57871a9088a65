"""The pipeline's steps: pure, typed functions over plain data and polars frames.

Importing the package first sets how polars' and pyarrow's allocators give memory back
(tasks/heap.py): polars reads it when it loads, the processes a run starts inherit it."""

from tasks.heap import prefer_returning_memory

prefer_returning_memory()
