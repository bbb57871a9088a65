"""One home for newsflow's defaults and the words that describe its parameters.

The CLI, the `ingest` flow (its parameters and the UI's run form), `newsflow serve` and
`prefect.yaml` all take their defaults and descriptions from here
(tests/flows/test_defaults.py checks that prefect.yaml agrees). Imports nothing heavy: the
CLI reads it before it decides whether Prefect is needed at all.
"""

from __future__ import annotations

MB = 1 << 20

SEEDS_DIR = "seeds"
DATA_DIR = "data"
GLOB = "**/*.txt"
NEAR_DUPLICATE_THRESHOLD = 0.8
BATCH_BYTES = 8 * MB  # what one worker process holds at once
# Input per Prefect task run. Each task run costs the API server ~45 ms of CPU (state events,
# records, logs): at 100 MB, 13 one-batch tasks were a third of Prefect's cost.
TASK_BYTES = 32 * MB
LOCK_WAIT_SECONDS = 0.0  # `newsflow run`: another run holding data/ is an error at once
SERVED_LOCK_WAIT_SECONDS = 900.0  # served runs queue behind each other instead
WORKERS = 0  # one worker process per core

# `newsflow serve` and prefect.yaml: the deployments of the ingest flow.
SWEEP_CRON = "*/15 * * * *"
SWEEP_TIMEZONE = "Asia/Shanghai"
TAGS = ("newsflow",)
DEPLOYMENTS = {
    "sweep": "Scheduled catch-up: ingests every new or changed file of the seeds folder.",
    "on-file": "Run by the folder watcher's events: ingests just the files that landed.",
    "backfill": (
        "On demand from the UI: choose the files (glob, since), the near-duplicate threshold, or a full refresh."
    ),
}

# What each parameter of the `ingest` flow means: the UI's run form and `newsflow run --help`.
HELP = {
    "seeds_dir": "Folder of input .txt pages.",
    "data_dir": (
        "Folder of the Parquet datasets (articles, occurrences, segments, spans, duplicates, files): "
        "a path or a filesystem URI such as `s3://bucket/newsflow` or `file:///srv/data`."
    ),
    "glob": "Which files, relative to the seeds folder, e.g. `2024-*/*.txt`. Absolute paths and `..` are refused.",
    "full_refresh": "Rebuild every dataset from the files present now instead of adding new and changed files.",
    "near_duplicate_threshold": (
        "Jaccard similarity of word 5-shingles (0 to 1) at or above which two articles are near-duplicates."
    ),
    "since": "Only files modified at or after this time.",
    "files": "Only these files (paths relative to the seeds folder); the folder watcher sets this.",
    "batch_bytes": (
        "Most bytes of input a worker process holds at once (bounds memory); batches are cut equal, "
        "as many as a multiple of the workers, so they end together."
    ),
    "task_bytes": "Bytes of input per Prefect task run (its batches run in the process pool together).",
    "lock_wait_seconds": "How long to wait for another run to release the data folder before giving up.",
    "workers": (
        "Processes for batch work: 0 = one per core, 1 = no process pool (with runner=dask: LocalCluster workers)."
    ),
    "runner": "Where batches run: `local` (this machine's cores) or `dask` (a Dask cluster through prefect-dask).",
    "dask_address": "Scheduler address of an existing Dask cluster, e.g. tcp://host:8786; empty = a LocalCluster.",
}

# The data-quality report (flows/report.py): its pages under <data>/_reports/ are served
# over http on this port by `newsflow serve` (so `make serve`) and `newsflow report --serve`;
# the run's link artifact points there unless NEWSFLOW_REPORT_URL names another address.
REPORT_HOST = "127.0.0.1"
REPORT_PORT = 4201
REPORT_RUNS = 30  # runs in the report's "last runs" charts
