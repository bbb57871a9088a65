"""`newsflow bench run` on a 4 MB corpus: it keeps working and its quality figures meet
the targets. Quality only -- never timing assertions (CI machines vary)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.measure import DEFAULT_ROOT, pss
from bench.run import TARGETS
from bench.table import format_table
from tests.conftest import tree_digest, without_manifest
from tests.paths import REPO


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_bench_run_4mb_quality(tmp_path: Path) -> None:
    results = tmp_path / "results.json"
    env = dict(os.environ)
    env.setdefault("PREFECT_HOME", str(DEFAULT_ROOT / ".prefect"))
    # corpora are cached under .bench/ (git-ignored); the naive baseline is skipped and the
    # A/B run is one pair here to keep CI short -- `make bench` runs them all
    cmd = [
        sys.executable,
        "-m",
        "flows.cli",
        "bench",
        "run",
        "--sizes",
        "4MB",
        "--no-baselines",
        "--ab-pairs",
        "1",
        "--results",
        str(results),
    ]
    proc = subprocess.run(cmd, check=False, cwd=REPO, env=env, capture_output=True, text=True, timeout=880)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "span recall (exact offsets)" in proc.stdout  # the one table was printed

    doc = json.loads(results.read_text())
    (r,) = doc["results"]
    q = r["newsflow"]["quality"]
    assert q["span_truth"] > 200 and q["exact_groups_truth"] > 40 and q["near_pairs_truth"] > 5
    assert q["span_recall"] >= TARGETS["span_recall"]
    assert q["lang_accuracy"] >= TARGETS["lang_accuracy"]
    assert q["dup_precision"] >= TARGETS["dup_precision"]
    assert q["dup_recall"] >= TARGETS["dup_recall"]
    assert q["occurrences_unmatched"] == 0
    assert r["newsflow"]["batches"] < r["files"]  # batches, not one task per file
    for step in ("load", "segment", "tag", "rows", "enrich", "sign", "spill", "dedup", "write"):
        assert step in r["newsflow"]["step_seconds"]
    assert 0 < r["newsflow"]["peak_pss_bytes"] <= r["newsflow"]["peak_rss_bytes"]
    assert r["newsflow"]["cpu_seconds"]["api_server"] > 0  # the API server did work during the run

    # The A/B's plain side did the flow's work without Prefect: the same datasets, and the
    # same two phases to compare.
    runs = DEFAULT_ROOT / "runs" / Path(r["corpus"]).name
    assert without_manifest(tree_digest(runs / "plain" / "data")) == without_manifest(
        tree_digest(runs / "newsflow" / "data")
    )
    medians = r["newsflow"]["ab_medians"]
    assert all(w > 0 and wo > 0 for w, wo in (medians["batch_phase"], medians["global_steps"]))
    parts = r["newsflow"]["overhead_parts"]
    assert set(parts) == {"engine", "before_batches", "worker_start", "workers_idle", "after_commit"}
    assert all(v >= 0 for v in parts.values())


def test_format_table_tolerates_missing_columns() -> None:
    table = format_table([{"size": "10MB", "files": 3, "bytes": 2**20}])
    assert "10MB" in table and "newsflow / datatrove" in table


def test_pss_counts_shared_pages_once() -> None:
    import psutil

    rss = psutil.Process().memory_info().rss
    shared_once = pss(os.getpid())
    assert 0 < shared_once <= rss * 1.01  # PSS never exceeds RSS (1 % for the pages touched in between)
    assert pss(2**22 + 7) == 0  # no such process: nothing, not an error
