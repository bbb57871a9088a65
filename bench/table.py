"""The benchmark's results as one table (a column per corpus size)."""

from __future__ import annotations

from bench.corpus import MB

# The steps a run times: per batch (summed over batches), then the global ones.
STEPS = ("load", "segment", "tag", "rows", "enrich", "sign", "spill", "dedup", "write")


def _fmt_row(label: str, values: list[str]) -> str:
    return f"{label:<34}" + "".join(f"{v:>14}" for v in values)


def format_table(results: list[dict]) -> str:
    sizes = [r["size"] for r in results]
    rows: list[tuple[str, list[str]]] = []

    def add(label: str, fn) -> None:
        vals = []
        for r in results:
            try:
                v = fn(r)
            except (KeyError, TypeError, ZeroDivisionError):
                v = None
            vals.append("-" if v is None else v)
        rows.append((label, vals))

    def nf(r: dict) -> dict:
        return r["newsflow"]

    add("files", lambda r: f"{r['files']}")
    add("MB", lambda r: f"{r['bytes'] / MB:.1f}")
    add("newsflow MB/s (end to end)", lambda r: f"{nf(r)['mb_per_s']:.1f}")
    add("newsflow files/s", lambda r: f"{nf(r)['files_per_s']:.0f}")
    add("wall s (ingest call)", lambda r: f"{nf(r)['seconds']:.1f}")
    for s in STEPS:
        add(f"  step {s} s", lambda r, s=s: f"{nf(r)['step_seconds'].get(s, 0):.1f}")
    add(
        "  batches / tasks / workers",
        lambda r: f"{nf(r)['batches']} / {nf(r).get('task_runs', '-')} / {nf(r)['workers']}",
    )
    add("  critical path s", lambda r: f"{nf(r)['critical_path_seconds']:.1f}")
    add("wall - critical path", lambda r: f"{nf(r)['overhead_seconds']:.1f}s {100 * nf(r)['overhead_share']:.0f}%")
    for part, label in (
        ("engine", "Prefect engine (run start+end)"),
        ("before_batches", "before batches (discover)"),
        ("worker_start", "worker start-up"),
        ("workers_idle", "workers idle (per worker)"),
        ("after_commit", "after commit (artifacts)"),
    ):
        add(f"  {label} s", lambda r, part=part: f"{nf(r)['overhead_parts'][part]:.1f}")
    add("A/B pairs", lambda r: f"{len(nf(r)['ab_pairs'])}")
    add("same work without Prefect s (median)", lambda r: f"{nf(r)['no_prefect_seconds']:.1f}")
    add(
        "Prefect overhead (A/B medians)",
        lambda r: f"{nf(r)['prefect_overhead_seconds']:.1f}s {100 * nf(r)['prefect_overhead_share']:.1f}%",
    )
    add("  batch phase s, with / without", lambda r: "{:.1f} / {:.1f}".format(*nf(r)["ab_medians"]["batch_phase"]))
    add("  global steps s, with / without", lambda r: "{:.1f} / {:.1f}".format(*nf(r)["ab_medians"]["global_steps"]))
    # The flow process's CPU beyond its own global steps (dedup, write) is orchestration:
    # Prefect's engine, the pool's pickling, logging; the API server's is all Prefect.
    add(
        "CPU s: API server / flow beyond steps",
        lambda r: (
            f"{nf(r)['cpu_seconds']['api_server']:.1f} / "
            f"{nf(r)['cpu_seconds']['flow_process'] - nf(r)['global_steps_cpu_seconds']:.1f}"
        ),
    )
    add("peak RSS MB (process+children)", lambda r: f"{nf(r)['peak_rss_bytes'] / MB:.0f}")
    add("peak PSS MB (shared pages once)", lambda r: f"{nf(r).get('peak_pss_bytes', 0) / MB:.0f}")
    add("Prefect server start s (excl.)", lambda r: f"{nf(r)['server_startup_seconds']:.1f}")
    add("load average (1 min) before", lambda r: f"{r['load_average_before'][0]:.1f}")
    add("limit MB/s (read+regex, 1 core)", lambda r: f"{r['limit']['mb_per_s']:.0f}")
    add("newsflow / limit", lambda r: f"{nf(r)['mb_per_s'] / r['limit']['mb_per_s']:.3f}")

    def q(r: dict) -> dict:
        return nf(r)["quality"]

    add("span recall (exact offsets)", lambda r: f"{q(r)['span_recall']:.4f}")
    add("span precision", lambda r: f"{q(r)['span_precision']:.4f}")
    add("language accuracy", lambda r: f"{q(r)['lang_accuracy']:.4f}")
    add("exact dup groups P / R", lambda r: f"{q(r)['exact_precision']:.3f}/{q(r)['exact_recall']:.3f}")
    add("near dup pairs P / R", lambda r: f"{q(r)['near_precision']:.3f}/{q(r)['near_recall']:.3f}")
    add(
        "  near pairs beyond truth (J>=0.8)",
        lambda r: (
            f"{q(r).get('near_pairs_beyond_generator', 0)} ({q(r).get('near_pairs_beyond_generator_genuine', 0)})"
        ),
    )
    add("dup precision (min)", lambda r: f"{q(r)['dup_precision']:.4f}")
    add("dup recall (min)", lambda r: f"{q(r)['dup_recall']:.4f}")
    add("naive MB/s", lambda r: f"{r['naive']['mb_per_s']:.2f}")
    add("naive peak RSS MB", lambda r: f"{r['naive']['peak_rss_bytes'] / MB:.0f}")
    add("newsflow / naive", lambda r: f"{nf(r)['mb_per_s'] / r['naive']['mb_per_s']:.1f}x")
    add("datatrove MB/s", lambda r: f"{r['datatrove']['mb_per_s']:.2f}")
    add("datatrove peak RSS MB", lambda r: f"{r['datatrove']['peak_rss_bytes'] / MB:.0f}")
    add("newsflow / datatrove", lambda r: f"{nf(r)['mb_per_s'] / r['datatrove']['mb_per_s']:.1f}x")
    out = [_fmt_row("measure", sizes), "-" * (34 + 14 * len(sizes))]
    out += [_fmt_row(label, vals) for label, vals in rows]
    return "\n".join(out)
