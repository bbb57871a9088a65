"""The measured systems, each run in a child process: `python -m bench.children <mode>
<seeds> <work> <result.json>` (bench/measure.py::run_child starts them).

- `newsflow`: the `ingest` flow with Prefect;
- `plain`: the same work without Prefect: the same planning, the same batch runner and the
  same global steps the flow's tasks call (flows/runners.py::run_batches,
  tasks/pipeline/run.py::finish_run): the A side of the Prefect-overhead A/B;
- `naive` and `datatrove`: the baselines (bench/baselines.py).
"""

from __future__ import annotations

import json
import shutil
import sys
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from bench.baselines import run_datatrove, run_naive
from bench.measure import prefect_cpu_seconds

if TYPE_CHECKING:
    from tasks.pipeline.planning import WorkPlan

# The pipeline is imported by the children that run it: the datatrove child runs in a venv
# of its own, without Prefect or polars.


def _warm_up_prefect() -> float:
    """Start the ephemeral API before timing (a deployed pipeline talks to a running server)."""
    from prefect import flow

    @flow(name="bench-warm-up")
    def warm_up() -> None:
        return None

    t = time.perf_counter()
    warm_up()
    return time.perf_counter() - t


def _child_newsflow(seeds: Path, work: Path) -> dict:
    import os

    # The pipeline as the A/B measures it: the data-quality report after the run is neither
    # pipeline nor Prefect overhead (its own cost: README, "Data-quality report").
    os.environ["NEWSFLOW_REPORT"] = "off"
    from flows.ingest import ingest

    data = work / "data"
    shutil.rmtree(data, ignore_errors=True)
    startup = _warm_up_prefect()
    cpu_before = prefect_cpu_seconds()
    t = time.perf_counter()
    summary = ingest(seeds_dir=str(seeds), data_dir=str(data), full_refresh=True)
    seconds = time.perf_counter() - t
    cpu = {k: v - cpu_before[k] for k, v in prefect_cpu_seconds().items()}
    t = summary.get("timeline", {})
    phases = ab_phases(t["batches_submitted"], t["batches_collected"], t["committed"]) if "committed" in t else {}
    return {
        "seconds": seconds,
        "server_startup_seconds": startup,
        "summary": summary,
        "data_dir": str(data),
        "cpu_seconds": cpu,
        "phases": phases,
    }


def ab_phases(submitted: float, collected: float, committed: float) -> dict[str, float]:
    """The two phases both sides of the A/B run, in wall seconds: the batch phase (handing
    out the batches -> having every result, worker start-up included) and the global steps
    (results -> committed). Compared side by side, they say where Prefect's cost lands."""
    return {"batch_phase": collected - submitted, "global_steps": committed - collected}


def _child_naive(seeds: Path, work: Path) -> dict:
    startup = _warm_up_prefect()
    t = time.perf_counter()
    info = run_naive(seeds, work / "naive")
    return {"seconds": time.perf_counter() - t, "server_startup_seconds": startup, **info}


def _child_datatrove(seeds: Path, work: Path) -> dict:
    t = time.perf_counter()
    info = run_datatrove(seeds, work / "datatrove")
    return {"seconds": time.perf_counter() - t, **info}


def work_plan(seeds: Path) -> WorkPlan:
    """The batches and workers the flow plans for a corpus, with its defaults."""
    from flows import defaults
    from tasks.pipeline.planning import discover_files, plan_work

    return plan_work(discover_files(seeds), defaults.BATCH_BYTES, defaults.TASK_BYTES)


def _child_plain(seeds: Path, work: Path) -> dict:
    """The ingest flow's work without Prefect: the functions the flow's tasks call, on the
    flow's plan and process pool (the pool's spawned workers and allocator policy
    included). The A side of the Prefect-overhead A/B measurement."""
    from flows import defaults
    from flows.runners import release_pool, run_batches
    from tasks.pipeline.run import finish_run
    from tasks.storage.spill import spill_root

    data = work / "data"
    shutil.rmtree(data, ignore_errors=True)
    t = time.perf_counter()
    submitted = time.time()
    run_id = str(uuid.uuid4())
    plan = work_plan(seeds)
    spill = str(spill_root(data, run_id).absolute())
    try:
        results = run_batches(str(seeds), plan.batches, list(range(len(plan.batches))), {}, spill, plan.workers)
    finally:
        release_pool()  # as the flow does before its global steps
    collected = time.time()
    finish_run(str(data), results, run_id, True, defaults.NEAR_DUPLICATE_THRESHOLD)
    return {"seconds": time.perf_counter() - t, "phases": ab_phases(submitted, collected, time.time())}


_CHILDREN = {"newsflow": _child_newsflow, "plain": _child_plain, "naive": _child_naive, "datatrove": _child_datatrove}


def _child_main(argv: list[str]) -> None:
    mode, seeds, work, result = argv
    out = _CHILDREN[mode](Path(seeds), Path(work))
    Path(result).write_text(json.dumps(out, default=str))


if __name__ == "__main__":
    _child_main(sys.argv[1:])
