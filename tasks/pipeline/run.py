"""The run's global steps, once per run after its batches: pure of Prefect.

    gather the batches' rows (one winner per article)
    -> exact dedup against data/ (article ids are content keys)
    -> the near-duplicate search over the persistent index, while every dataset it does
       not decide is staged beside it
    -> stage the near-duplicate links -> commit (manifest last)

`finish_run` is the entry point; the flow's `deduplicate-and-commit` task and the
benchmark's no-Prefect side both call it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.dataset as ds

from tasks.pipeline.batch import BatchResult, FileOutcome, KnownFile, count_outcomes
from tasks.pipeline.summary import RunSummary
from tasks.process.faults import fault_point
from tasks.process.memory import return_freed_memory
from tasks.process.stats import StepStats
from tasks.schema import (
    ARTICLES,
    DUPLICATES,
    FILES,
    MINHASH_INDEX,
    OCCURRENCES,
    SEGMENTS,
    SPANS,
    STATUS_QUARANTINED,
    C,
    DatasetSpec,
    empty_frame,
)
from tasks.steps.dedupe import find_near_duplicates, one_per_article
from tasks.steps.identity import normalize_text
from tasks.steps.minhash import sign_articles, signature_text_expr, signature_texts
from tasks.storage.commit import CommitPlan, commit, stage_update
from tasks.storage.parquet import PART_FILE, read_dataset
from tasks.storage.spill import SpilledRows, spill_files_by_batch, spill_root
from tasks.storage.stores import DataDirLike, open_data_dir


def manifest_rows(outcomes: list[FileOutcome], run_id: str, now: datetime) -> pl.DataFrame:
    """One manifest row per file this run looked at and did not skip."""
    records = [
        {
            C.source_file: o.source_file,
            C.source_sha256: o.sha256,
            C.n_bytes: o.n_bytes,
            C.encoding: o.encoding,
            C.status: o.status,
            C.reason: o.reason,
            C.run_id: run_id,
            C.processed_at: now,
        }
        for o in outcomes
        if not o.unchanged
    ]
    return pl.from_arrow(pa.Table.from_pylist(records, schema=FILES.schema))  # type: ignore[return-value]


_TEXT = "_text"  # internal column: an article's title and body, see signature_text_expr


@dataclass
class RunRows:
    """This run's rows, as the batches spilled them under `root`: read lazily and one
    partition at a time. `winners` holds one (article_id, batch) per article of the run:
    a `main` occurrence wins over `related` (it carries the date), then batch order."""

    root: Path
    winners: pl.DataFrame
    n_occurrences: int = 0
    spans_by_lang: dict[str, int] = field(default_factory=dict)

    @classmethod
    def gather(cls, root: Path, results: list[BatchResult]) -> RunRows:
        """The run's rows from what its batches spilled under `root` and reported back."""
        keys = [r.article_keys for r in results if r.article_keys is not None]
        if not keys:  # nothing processed: no rows (and keys of the right types)
            keys = [SpilledRows(root, ARTICLES).scan().select(C.article_id, C.kind, C.batch, C.row).collect()]
        winners = one_per_article(pl.concat(keys), [C.batch, C.row]).select(C.article_id, C.batch)
        by_lang: dict[str, int] = {}
        for r in results:
            for lang, n in r.spans_by_lang.items():
                by_lang[lang] = by_lang.get(lang, 0) + n
        return cls(root, winners, sum(r.n_occurrences for r in results), dict(sorted(by_lang.items())))

    def rows(self, spec: DatasetSpec) -> SpilledRows:
        return SpilledRows(self.root, spec)

    def spill_bytes(self) -> int:
        """Bytes of every file the batches spilled (Arrow IPC): the run's size as the global
        steps see it."""
        return sum(f.stat().st_size for f in self.root.rglob("*") if f.is_file())

    def articles(self, keep: pl.DataFrame | None = None) -> SpilledRows:
        """Winning article rows (of `keep`, a subset of `winners`, when given)."""
        chosen = (self.winners if keep is None else keep).lazy()
        return SpilledRows(self.root, ARTICLES, lambda f: f.join(chosen, on=[C.article_id, C.batch], how="semi"))

    def signatures(self, keep: pl.DataFrame | None = None) -> pl.DataFrame:
        chosen = (self.winners if keep is None else keep).lazy()
        return (
            SpilledRows(self.root, MINHASH_INDEX)
            .scan()
            .join(chosen, on=[C.article_id, C.batch], how="semi")
            .select([f.name for f in MINHASH_INDEX.schema])
            .collect()
        )

    def article_texts(self, ids: list[str]) -> pl.DataFrame:
        """article_id, _TEXT (title and body, not normalized) of the winners among `ids`, read
        one batch's file at a time: only the wanted texts are held, copied out of the read
        buffers. (A streaming scan of every file at once held ~570 MB at 1 GB of input, and
        string views of the kept rows pin the buffers they point into.)"""
        wanted = self.winners.filter(pl.col(C.article_id).is_in(ids))
        files = spill_files_by_batch(self.root, ARTICLES.name)
        pieces = [pl.DataFrame(schema={C.article_id: pl.String, _TEXT: pl.String})]
        for batch, ids_of_batch in wanted.group_by(C.batch, maintain_order=True).agg(C.article_id).iter_rows():
            pieces.append(
                pl.scan_ipc(files[batch], hive_partitioning=False, glob=False)  # a path, not a pattern
                .filter(pl.col(C.article_id).is_in(ids_of_batch))
                .select(C.article_id, signature_text_expr().alias(_TEXT))
                .collect()
            )
        return pl.concat(pieces)

    def span_examples(self, n: int) -> list[dict[str, str | None]]:
        """The run's first `n` spans by file and offset, with their language and gloss."""
        first = self.rows(SPANS).scan().sort(C.source_file, C.char_start).head(n)
        return first.select(C.source_file, C.text, C.lang, C.gloss).collect().to_dicts()

    def article_ids(self) -> set[str]:
        """Every article this run saw (each has an occurrence, and each occurrence an article)."""
        return set(self.winners.get_column(C.article_id).to_list())


def _among(article_ids: list[str]) -> ds.Expression:
    return ds.field(C.article_id).isin(article_ids)


def texts_loader(data_dir: DataDirLike, rows: RunRows) -> Callable[[list[str]], dict[str, str]]:
    """Near-dup verification needs the text of candidate articles only: from this run's
    spilled rows when new, otherwise from the articles dataset."""

    def load(ids: list[str]) -> dict[str, str]:
        fresh = rows.article_texts(ids)
        texts = (normalize_text(t) for t in fresh.get_column(_TEXT))
        found = dict(zip(fresh.get_column(C.article_id).to_list(), texts, strict=True))
        missing = [i for i in ids if i not in found]
        if missing:
            old = read_dataset(data_dir, ARTICLES, [C.article_id, C.title, C.body], where=_among(missing))
            found.update(zip(old.get_column(C.article_id).to_list(), signature_texts(old), strict=True))
        return found

    return load


@dataclass
class ExactMatch:
    """Exact dedup against data/: which of the run's articles are new, which stored ones lost
    every occurrence, and the index that near-duplicate search runs over."""

    new_articles: SpilledRows  # this run's articles that data/ does not hold yet
    n_new_articles: int
    new_signatures: pl.DataFrame
    orphaned: list[str]  # articles whose every occurrence was replaced
    articles_total: int
    index: pl.DataFrame  # every live article's signature (~0.5 KB each): held by the near-duplicate step only
    n_resigned: int = 0  # stored articles the index lacked, signed again (see resign_missing)


def resign_missing(data: DataDirLike, index: pl.DataFrame, article_ids: set[str]) -> pl.DataFrame:
    """Signatures for stored articles the index lacks (a new signature scheme, a lost index
    folder): near-duplicate search must see every article ever ingested."""
    missing = article_ids - set(index.get_column(C.article_id).to_list())
    if not missing:
        return empty_frame(MINHASH_INDEX.schema)
    columns = [C.article_id, C.published_at, C.title, C.body]
    stored = read_dataset(data, ARTICLES, columns, where=_among(sorted(missing))).sort(C.article_id)
    return sign_articles(stored)


def match_exact(data: DataDirLike, rows: RunRows, replaced_files: list[str], full_refresh: bool) -> ExactMatch:
    """Exact dedup against everything ingested before (article ids are content hashes)."""
    if full_refresh:
        kept_ids: set[str] = set()
        existing_ids: set[str] = set()
        old_index = empty_frame(MINHASH_INDEX.schema)
    else:
        occ = read_dataset(data, OCCURRENCES, [C.article_id, C.source_file])
        kept_ids = set(occ.filter(~pl.col(C.source_file).is_in(replaced_files)).get_column(C.article_id).to_list())
        existing_ids = set(read_dataset(data, ARTICLES, [C.article_id]).get_column(C.article_id).to_list())
        old_index = read_dataset(data, MINHASH_INDEX)
    live_ids = kept_ids | rows.article_ids()
    orphaned = sorted(existing_ids - live_ids)
    new_ids = rows.winners.filter(~pl.col(C.article_id).is_in(list(existing_ids)))
    new_signatures = rows.signatures(new_ids)
    resigned = resign_missing(data, old_index, existing_ids - set(orphaned))
    if resigned.height:
        new_signatures = pl.concat([new_signatures, resigned])
    # The index persists under data/_index: a file arriving next month meets everything before it.
    # (every signature is 0.5 KB: at 1 GB of input the index is ~165 MB, so no needless copies)
    index = (
        pl.concat([old_index.filter(~pl.col(C.article_id).is_in(orphaned)), new_signatures])
        if old_index.height
        else new_signatures
    )
    total = len(existing_ids - set(orphaned)) + new_ids.height
    return ExactMatch(rows.articles(new_ids), new_ids.height, new_signatures, orphaned, total, index, resigned.height)


# The near-duplicate search is mostly Python, staging mostly pyarrow and polars with the GIL
# released: side by side, the second core works while the first searches (100 MB of input:
# global steps 3.8 s against 4.8 s one after the other; 1 GB: 30 against 42 s). But each holds
# hundreds of MB at 1 GB (the index and the candidates' shingles; the largest articles
# partition): side by side the flow's peak is 1.52 GB against 1.09 GB, the run's 1.86 GB, over
# the 1.5 GB bound. So they overlap only while the run's spill (Arrow IPC on disk, ~1.05 MB a MB
# of input) is small.
OVERLAP_MAX_SPILL_BYTES = 256 * 1024 * 1024


def stage_run_rows(
    data: DataDirLike,
    run_id: str,
    rows: RunRows,
    exact: ExactMatch,
    manifest: pl.DataFrame,
    replaced_files: list[str],
    full_refresh: bool,
    stop: threading.Event,
) -> CommitPlan:
    """Stage every changed partition of every dataset but `duplicates` (nothing here waits
    for the near-duplicate search, so it runs beside it); nothing is committed. Stops
    before the next dataset once `stop` is set (the run has failed)."""
    plan = CommitPlan(run_id)
    gone = pl.col(C.article_id).is_in(exact.orphaned)
    replaced = pl.col(C.source_file).is_in(replaced_files)
    updates = [
        (MINHASH_INDEX, exact.new_signatures, gone),
        (ARTICLES, exact.new_articles, gone),
        (OCCURRENCES, rows.rows(OCCURRENCES), replaced),
        (SEGMENTS, rows.rows(SEGMENTS), replaced),
        (SPANS, rows.rows(SPANS), replaced),
        (FILES, manifest, replaced),
    ]
    exact.new_signatures = exact.new_signatures.clear()  # held by `updates` only: dropped once staged
    while updates and not stop.is_set():
        spec, new_rows, delete_where = updates.pop(0)
        fault_point(f"stage:{spec.name}")
        plan.extend(stage_update(data, run_id, spec, new_rows, delete_where=delete_where, replace_all=full_refresh))
        del new_rows  # a dataset's rows, once staged
        return_freed_memory()
    return plan


def deduplicate_stage_and_commit(
    data: DataDirLike,
    run_id: str,
    rows: RunRows,
    manifest: pl.DataFrame,
    replaced_files: list[str],
    full_refresh: bool,
    threshold: float,
    stats: StepStats,
    links_before: pl.DataFrame | None,
) -> tuple[ExactMatch, pl.DataFrame, CommitPlan]:
    """The global steps: exact dedup; then the near-duplicate search (on this thread) and the
    staging of every dataset it does not decide (on another) -- at once when the run's spill
    is at most OVERLAP_MAX_SPILL_BYTES, else one after the other. Then the `duplicates`
    dataset (unless the links equal `links_before`, the stored ones), and the commit
    (manifest last) -- none when nothing changed: a run over unchanged input writes nothing.

    If the search fails, staging stops after the dataset it is on, the error goes up once
    the staging thread has ended (a staging error too is noted on it), and nothing is
    committed. `stats` gets each step's own wall time (dedup, write): when they overlap,
    their sum is more than the wall time of this call."""
    with stats.track_time("dedup"):
        exact = match_exact(data, rows, replaced_files, full_refresh)
    overlap = rows.spill_bytes() <= OVERLAP_MAX_SPILL_BYTES
    write_stats = StepStats()  # the staging thread's own: merged once it has ended
    stop = threading.Event()

    def stage_beside_search() -> CommitPlan:
        with write_stats.track_time("write"):
            return stage_run_rows(data, run_id, rows, exact, manifest, replaced_files, full_refresh, stop)

    with ThreadPoolExecutor(1, thread_name_prefix="newsflow-stage") as stager:
        staged = stager.submit(stage_beside_search) if overlap else None
        try:
            with stats.track_time("dedup"):
                duplicates = find_near_duplicates(exact.index, texts_loader(data, rows), threshold=threshold)
        except BaseException as exc:
            stop.set()
            exact.index = exact.index.clear()  # not held while the staging thread ends
            if staged is not None and (staging_error := staged.exception()) is not None:  # waits for the staging thread
                exc.add_note(f"staging, running beside the search, failed too: {staging_error!r}")
            raise
        finally:
            exact.index = exact.index.clear()  # the run's largest frame, not needed past the search
            return_freed_memory()
        try:
            plan = (
                staged if staged is not None else stager.submit(stage_beside_search)
            ).result()  # a failed stage raises here
        except BaseException:
            stop.set()  # interrupted (Ctrl-C): stage no further dataset before the `with` joins the thread
            raise
    with write_stats.track_time("write"):
        fault_point(f"stage:{DUPLICATES.name}")
        if not _same_links(duplicates, links_before):  # recomputed whole from the index every run
            plan.extend(stage_update(data, run_id, DUPLICATES, duplicates, replace_all=True))
        if plan.writes or plan.deletes:
            fault_point("commit")
            commit(data, plan)
    stats.merge(write_stats)
    return exact, duplicates, plan


def _same_links(links: pl.DataFrame, stored: pl.DataFrame | None) -> bool:
    """The near-duplicate links equal the stored ones (None: the dataset has no file yet)."""
    if stored is None:
        return False
    columns = [f.name for f in DUPLICATES.schema]
    key = [C.duplicate_of, C.article_id]
    return links.select(columns).sort(key).equals(stored.select(columns).sort(key))


SPAN_EXAMPLES = 10  # spans shown in the run's summary


def finish_run(
    data_dir: DataDirLike, results: list[BatchResult], run_id: str, full_refresh: bool, threshold: float
) -> RunSummary:
    """The global steps, once per run: deduplicate against data/, stage, then the atomic
    commit; the run's summary (its step stats include the batches')."""
    started, started_cpu = time.perf_counter(), time.process_time()
    data = open_data_dir(data_dir)
    stats = StepStats()
    for r in results:
        stats.merge(r.stats)
    outcomes = [o for r in results for o in r.outcomes]
    replaced_files = sorted(o.source_file for o in outcomes if not o.unchanged)
    rows = RunRows.gather(spill_root(data, run_id), results)
    links_before = read_dataset(data, DUPLICATES) if data.list_files(DUPLICATES.name, PART_FILE) else None
    manifest = manifest_rows(outcomes, run_id, datetime.now(UTC))
    span_examples = rows.span_examples(SPAN_EXAMPLES)  # read from the spill, which the commit removes
    exact, duplicates, plan = deduplicate_stage_and_commit(
        data, run_id, rows, manifest, replaced_files, full_refresh, threshold, stats, links_before
    )
    pair = [C.article_id, C.duplicate_of]
    new_links = (
        duplicates.select(pair).join(links_before.select(pair), on=pair, how="anti")
        if links_before is not None
        else duplicates
    )
    files = count_outcomes(outcomes)
    return RunSummary(
        run_id=run_id,
        files_seen=len(outcomes),
        files_processed=files.processed,
        files_quarantined=files.quarantined,
        files_quarantined_before=files.quarantined_before,
        files_unchanged=files.unchanged,
        occurrences=rows.n_occurrences,
        articles_in_run=rows.winners.height,
        articles_new=exact.n_new_articles,
        articles_already_seen=rows.winners.height - exact.n_new_articles,
        articles_total=exact.articles_total,
        near_duplicates_new=new_links.height,
        near_duplicates_total=duplicates.height,
        spans=sum(rows.spans_by_lang.values()),
        spans_by_lang=rows.spans_by_lang,
        span_examples=span_examples,
        quarantined={o.source_file: o.reason or "" for o in outcomes if o.status == STATUS_QUARANTINED},
        resigned=exact.n_resigned,
        partitions_written=len(plan.writes),
        partitions_deleted=len(plan.deletes),
        step_seconds=stats.seconds,
        global_steps_seconds=time.perf_counter() - started,
        global_steps_cpu_seconds=time.process_time() - started_cpu,
        outcomes=outcomes,
    )


def known_files(data: DataDirLike) -> dict[str, KnownFile]:
    """What the manifest holds of every file it has a sha256 for: (sha256, the reason it was
    quarantined, or None when it was processed)."""
    manifest = read_dataset(data, FILES, [C.source_file, C.source_sha256, C.status, C.reason])
    return {
        f: (sha, reason if status == STATUS_QUARANTINED else None)
        for f, sha, status, reason in manifest.iter_rows()
        if sha is not None
    }


def known_for(known: dict[str, KnownFile], files: list[str]) -> dict[str, KnownFile]:
    """What is known of some files (a batch's: not the whole manifest, once per batch)."""
    return {f: known[f] for f in files if f in known}
