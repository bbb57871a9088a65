"""Benchmark runs: every measured system on a cached corpus, its quality scored, and the
figures a table is made of (`newsflow bench run`)."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import time
from pathlib import Path

from bench.baselines import datatrove_python
from bench.children import work_plan
from bench.corpus import DONE_FILE, GENERATOR_VERSION, MB, PAGES_DIR, TRUTH_DIR, CorpusParams, format_size, write_corpus
from bench.measure import machine_limit, run_child
from bench.quality import evaluate

NAIVE_MAX_BYTES = 16 * MB  # the O(n^2) baseline runs on the 10 MB corpus only
TARGETS = {"span_recall": 0.99, "lang_accuracy": 0.98, "dup_precision": 0.99, "dup_recall": 0.95}
# run in worker processes, in parallel (spill: a batch writing its rows to the run's staging)
BATCH_STEPS = ("load", "segment", "tag", "rows", "enrich", "sign", "spill")


# ----------------------------------------------------------------------------- corpora


def corpus_dir(root: Path, size: int, seed: int) -> Path:
    return Path(root) / "corpus" / f"{format_size(size)}-seed{seed}-v{GENERATOR_VERSION}"


def ensure_corpus(root: Path, size: int, seed: int, echo=print) -> Path:
    """The cached corpus for (size, seed), generated when missing or incomplete."""
    out = corpus_dir(root, size, seed)
    if not (out / TRUTH_DIR / DONE_FILE).exists():
        echo(f"generating {format_size(size)} corpus (seed {seed}) in {out} ...")
        t = time.perf_counter()
        write_corpus(out, CorpusParams(size_bytes=size, seed=seed))
        echo(f"  done in {time.perf_counter() - t:.1f} s")
    return out


def _critical_path(summary: dict, n_workers: int) -> float:
    """Seconds of step work on the critical path: batch steps run in n_workers processes at
    once (perfect packing assumed, so this is a lower bound), then the global steps, whose
    wall time is measured as a whole: dedup and write overlap
    (tasks/pipeline/run.py::deduplicate_stage_and_commit)."""
    steps = summary.get("step_seconds", {})
    batch = sum(steps.get(s, 0.0) for s in BATCH_STEPS)
    return batch / max(n_workers, 1) + summary["global_steps_seconds"]


def overhead_parts(call_seconds: float, summary: dict, n_workers: int) -> dict[str, float]:
    """Wall seconds off the steps' critical path, by where they were spent: Prefect's engine
    around the flow body (run start and end, heartbeat join), the flow body before handing
    out batches (lock, recovery, discovery), worker start-up (spawn, imports), workers idle
    during the batch phase (per worker: imbalance), and the flow body after the commit
    (artifacts)."""
    t = summary.get("timeline", {})
    if "worker_busy" not in t:
        return {}
    return {
        "engine": call_seconds - summary["wall_seconds"],
        "before_batches": t["batches_submitted"],
        "worker_start": t["first_batch_started"] - t["batches_submitted"],
        "workers_idle": t["worker_idle"] / max(n_workers, 1),
        "after_commit": summary["wall_seconds"] - t["committed"],
    }


def _speed(measured: dict, n_bytes: int, n_files: int, *extras: str) -> dict:
    """A measured system's row: seconds, MB/s, files/s, peak RSS, then the named extras."""
    seconds = measured["seconds"]
    return {
        "seconds": seconds,
        "mb_per_s": n_bytes / MB / seconds,
        "files_per_s": n_files / seconds,
        "peak_rss_bytes": measured["peak_rss_bytes"],
        **{key: measured.get(key) for key in extras},
    }


def _ab_pairs(seeds: Path, work: Path, first: tuple[dict, dict], pairs: int, echo=print) -> list[tuple[dict, dict]]:
    """(child result with Prefect, without) for `pairs` A/B pairs, the first given; the
    others alternate which side runs first, so a machine speeding up or slowing down during
    the pairs does not favour one side."""
    runs = [first]
    for i in range(1, pairs):
        order = ("plain", "newsflow") if i % 2 else ("newsflow", "plain")
        got = {mode: run_child(mode, seeds, work / "ab" / mode) for mode in order}
        runs.append((got["newsflow"], got["plain"]))
        echo(
            f"  A/B pair {i + 1}: {got['newsflow']['seconds']:.1f} s "
            f"with Prefect, {got['plain']['seconds']:.1f} s without"
        )
    return runs


def ab_medians(pairs: list[tuple[dict, dict]]) -> dict[str, tuple[float, float]]:
    """Median seconds with and without Prefect: of the whole run and of each phase."""
    out = {
        "total": (statistics.median(a["seconds"] for a, _ in pairs), statistics.median(b["seconds"] for _, b in pairs))
    }
    for phase in ("batch_phase", "global_steps"):
        with_, without = (
            [a.get("phases", {}).get(phase) for a, _ in pairs],
            [b.get("phases", {}).get(phase) for _, b in pairs],
        )
        if None not in with_ + without:
            out[phase] = (statistics.median(with_), statistics.median(without))
    return out


def bench_size(
    root: Path,
    size: int,
    seed: int,
    baselines: bool,
    datatrove: bool,
    ab: bool = True,
    echo=print,
    naive: bool = True,
    ab_pairs: int = 3,
) -> dict:
    corpus = ensure_corpus(root, size, seed, echo)
    seeds, truth = corpus / PAGES_DIR, corpus / TRUTH_DIR
    gen = json.loads((truth / DONE_FILE).read_text())
    n_bytes, n_files = gen["counts"]["bytes"], gen["counts"]["files"]
    work = Path(root) / "runs" / corpus.name
    res: dict = {"size": format_size(size), "seed": seed, "bytes": n_bytes, "files": n_files, "corpus": str(corpus)}
    res["load_average_before"] = os.getloadavg()
    res["limit"] = machine_limit(seeds)
    echo(f"[{res['size']}] machine limit (read + decode + one regex pass, 1 core): {res['limit']['mb_per_s']:.0f} MB/s")

    echo(f"[{res['size']}] newsflow ingest ...")
    nf = run_child("newsflow", seeds, work / "newsflow")
    plan = work_plan(seeds)
    n_workers = plan.workers
    summary = nf["summary"]
    steps = dict(summary.get("step_seconds", {}))
    crit = _critical_path(summary, n_workers)
    res["load_average_after_newsflow"] = os.getloadavg()
    plain = run_child("plain", seeds, work / "plain") if ab else None
    res["newsflow"] = {
        **_speed(nf, n_bytes, n_files, "server_startup_seconds", "peak_rss_breakdown", "peak_pss_bytes"),
        "flow_wall_seconds": summary["wall_seconds"],
        "cpu_seconds": nf.get("cpu_seconds", {}),
        "step_seconds": steps,
        "global_steps_seconds": summary["global_steps_seconds"],
        "global_steps_cpu_seconds": summary["global_steps_cpu_seconds"],
        "batches": len(plan.batches),
        "task_runs": len(plan.tasks),
        "workers": n_workers,
        "critical_path_seconds": crit,
        "overhead_seconds": nf["seconds"] - crit,
        "overhead_share": (nf["seconds"] - crit) / nf["seconds"],
        "overhead_parts": overhead_parts(nf["seconds"], summary, n_workers),
        "quality": evaluate(Path(nf["data_dir"]), truth),
    }
    if plain:
        # One pair is not enough on a shared machine: single pairs at 100 MB ranged 0.0-5.8 s.
        pairs = _ab_pairs(seeds, work, (nf, plain), max(ab_pairs, 1), echo)
        medians = ab_medians(pairs)
        with_prefect, without = medians["total"]
        res["newsflow"]["ab_pairs"] = [(a["seconds"], b["seconds"]) for a, b in pairs]
        res["newsflow"]["ab_phase_pairs"] = [(a.get("phases"), b.get("phases")) for a, b in pairs]
        res["newsflow"]["ab_medians"] = medians
        res["newsflow"]["no_prefect_seconds"] = without
        res["newsflow"]["no_prefect_peak_rss_bytes"] = plain["peak_rss_bytes"]
        res["newsflow"]["prefect_overhead_seconds"] = with_prefect - without
        res["newsflow"]["prefect_overhead_share"] = (with_prefect - without) / with_prefect
    echo(f"  {res['newsflow']['mb_per_s']:.1f} MB/s, peak RSS {nf['peak_rss_bytes'] / MB:.0f} MB")
    if baselines and naive and n_bytes <= NAIVE_MAX_BYTES:
        echo(f"[{res['size']}] naive baseline (task per file, langdetect per paragraph, O(n^2) dedup) ...")
        nv = run_child("naive", seeds, work / "naive")
        (work / "naive" / "measured.json").write_text(json.dumps(nv))
        res["naive"] = _speed(nv, n_bytes, n_files, "pairs_compared", "task_runs")
    elif baselines and (work / "naive" / "measured.json").exists():  # --no-naive: reuse the last measurement
        cached = json.loads((work / "naive" / "measured.json").read_text())
        res["naive"] = {
            **_speed(cached, n_bytes, n_files, "pairs_compared", "task_runs"),
            "cached": True,
        }
    if baselines and datatrove:
        try:
            python = datatrove_python(root, echo)
        except (subprocess.CalledProcessError, OSError) as exc:
            res["datatrove"] = {"skipped": f"datatrove could not be installed: {exc}"}
        else:
            echo(f"[{res['size']}] datatrove (read, fastText LID, MinHash dedup, Parquet) ...")
            dt = run_child("datatrove", seeds, work / "datatrove", python=python)
            res["datatrove"] = _speed(dt, n_bytes, n_files, "docs_kept", "version")
    return res
