"""`newsflow bench`: generate ground-truth corpora and benchmark the ingest flow on them.

    newsflow bench generate --size 100MB --seed 1 --out DIR
    newsflow bench run [--sizes 10MB,100MB] [--corpus-root .bench] [--baselines/--no-baselines]

Each measured system runs in a child process of its own (bench/measure.py); the quality
of its datasets is scored against the corpus ground truth (bench/quality.py) and the
results printed as one table (bench/table.py). See docs/PERFORMANCE.md. The modules that
do the work are imported by the commands, so `newsflow --help` stays fast.
"""

from __future__ import annotations

import json
import os
import platform
import time
from datetime import UTC, datetime
from pathlib import Path

import typer

from bench import DEFAULT_ROOT

bench_app = typer.Typer(
    add_completion=False, no_args_is_help=True, help="Benchmark newsflow on generated corpora with ground truth."
)


def _sizes(param: typer.CallbackParam, text: str) -> str:
    """Refuse a size that does not parse before any corpus is generated or run."""
    from bench.corpus import parse_size
    from flows.cli import refuse

    for size in text.split(","):
        try:
            if size.strip():
                parse_size(size)
        except ValueError as exc:
            raise refuse(f"{param.opts[0]} {exc}") from None
    return text


def _output_folder(out: Path) -> Path:
    from flows.cli import refuse

    if out.exists() and not out.is_dir():
        raise refuse(f"--out {out} is a file; give a folder (it is created if missing)")
    return out


@bench_app.command()
def generate(
    size: str = typer.Option(
        "10MB", "--size", callback=_sizes, help="Corpus size: 10MB, 100MB, 1GB (MB = 2**20 bytes)."
    ),
    seed: int = typer.Option(1, "--seed", help="Random seed; the same seed gives the same bytes."),
    out: Path = typer.Option(
        ..., "--out", callback=_output_folder, help="Output folder: pages under seeds/, ground truth under truth/."
    ),
) -> None:
    """Write a seed-format corpus with known duplicate and untranslated-span rates, plus ground truth."""
    from bench.corpus import MB, CorpusParams, parse_size, write_corpus

    t = time.perf_counter()
    summary = write_corpus(out, CorpusParams(size_bytes=parse_size(size), seed=seed))
    c = summary["counts"]
    typer.echo(
        f"{c['files']} files, {c['bytes'] / MB:.1f} MB, {c['spans']} "
        f"spans, {c['near_dup_variants']} near-duplicate pairs, "
        f"{c['related_reused']} reused related articles in {time.perf_counter() - t:.1f} s -> {out}"
    )


@bench_app.command("run")
def run_bench(
    sizes: str = typer.Option(
        "10MB,100MB", "--sizes", callback=_sizes, help="Comma-separated corpus sizes (MB = 2**20 bytes)."
    ),
    corpus_root: Path = typer.Option(
        DEFAULT_ROOT, "--corpus-root", help="Cache of corpora and runs (git-ignored .bench/)."
    ),
    seed: int = typer.Option(
        1, "--seed", help="Random seed of the generated corpora; the same seed gives the same bytes."
    ),
    baselines: bool = typer.Option(
        True, "--baselines/--no-baselines", help="Also run the naive baseline (10 MB only) and datatrove."
    ),
    datatrove: bool = typer.Option(
        True, "--datatrove/--no-datatrove", help="Include datatrove when baselines run (needs the bench extra)."
    ),
    results_file: Path | None = typer.Option(
        None, "--results", help="JSON results (default: <corpus-root>/results.json)."
    ),
    ab: bool = typer.Option(
        True, "--ab/--no-ab", help="Also run the same work without Prefect, to measure Prefect's overhead."
    ),
    naive: bool = typer.Option(
        True, "--naive/--no-naive", help="Include the naive baseline when baselines run (10 MB only)."
    ),
    ab_pairs: int = typer.Option(
        3,
        "--ab-pairs",
        min=1,
        help="A/B pairs per size (alternating which side runs first); the overhead is the difference of the medians.",
    ),
) -> None:
    """Generate missing corpora, run the ingest flow on each, print one table, write JSON."""
    from bench.corpus import parse_size
    from bench.run import TARGETS, bench_size
    from bench.table import format_table

    results = [
        bench_size(
            corpus_root, parse_size(s), seed, baselines, datatrove, ab, echo=typer.echo, naive=naive, ab_pairs=ab_pairs
        )
        for s in sizes.split(",")
        if s.strip()
    ]
    doc = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "targets": TARGETS,
        "results": results,
    }
    path = results_file or Path(corpus_root) / "results.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1, default=str))
    typer.echo("")
    typer.echo(format_table(results))
    typer.echo(f"\nresults: {path}")


@bench_app.command()
def entities(
    errors: bool = typer.Option(
        False, "--errors", help="Also print each article's false positives (+) and negatives (-)."
    ),
    source: str | None = typer.Option(None, "--source", help="Score only rows of one source: seed, eval or written."),
    as_json: bool = typer.Option(False, "--json", help="Print the scores as JSON."),
    check: bool = typer.Option(
        False, "--check", help="Exit 1 below the floor (exact F1 and precision on the holdout)."
    ),
    extractor: str = typer.Option(
        "tasks.steps.entities:find_entities", "--extractor", help="module:function, or a module with find_people & co."
    ),
    eval_dir: Path | None = typer.Option(None, "--eval-dir", help="WMT23 evaluation data (default ../shared/eval)."),
) -> None:
    """Entity precision, recall and F1 per type and split (exact and lenient) on the labelled sample."""
    from bench.entities import FLOOR, ExtractorNotFound, below_floor, evaluate, table
    from flows.cli import refuse

    if check and source:
        raise typer.BadParameter("the floor is on the whole holdout split: --check takes no --source")
    t = time.perf_counter()
    try:
        rep = evaluate(extractor, eval_dir=eval_dir, source=source)
    except ExtractorNotFound as exc:
        raise refuse(str(exc)) from None
    if as_json:
        scores = {
            f"{s}/{ty}": {"gold": c.gold, "pred": c.pred, **c.scores()} for (s, ty), c in sorted(rep.counts.items())
        }
        typer.echo(
            json.dumps({"extractor": extractor, "articles": rep.articles, "missing": rep.missing, "scores": scores})
        )
    else:
        typer.echo(f"{extractor}: {rep.articles} articles in {time.perf_counter() - t:.1f} s")
        typer.echo(table(rep))
    if errors:
        for e in rep.errors:
            typer.echo(f"\n[{e['split']}] {e['id']} {e['type']}")
            if e["false_pos"]:
                typer.echo("  + " + " | ".join(e["false_pos"]))
            if e["false_neg"]:
                typer.echo("  - " + " | ".join(e["false_neg"]))
    short = [] if source else below_floor(rep)
    for line in short:
        typer.echo(f"below the floor: {line}", err=True)
    if check:
        if short:
            raise typer.Exit(1)
        typer.echo(f"floor met: exact F1 >= {FLOOR['f1']} and precision >= {FLOOR['precision']} on {FLOOR['split']}")
