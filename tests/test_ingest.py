"""flows/ingest.py end to end: real files, a real Prefect API, real Parquet read back."""

from __future__ import annotations

import hashlib
import shutil
import threading
import time
from pathlib import Path

import polars as pl
import pytest
from prefect.client.orchestration import get_client

import flows.ingest as ingest_module
from flows.ingest import RunRows, batch_timeline, ingest
from tasks.steps import dedupe
from tasks.schema import (
    ARTICLES,
    DUPLICATES,
    FILES,
    MINHASH_INDEX,
    OCCURRENCES,
    SEGMENTS,
    SPANS,
    STATUS_PROCESSED,
    STATUS_QUARANTINED,
    C,
)
from tasks.pipeline.batch import Spill, process_files
from tasks.storage.stores import open_data_dir
from tasks.storage.parquet import read_dataset
from tests.conftest import tree_digest, without_manifest

pytestmark = pytest.mark.usefixtures("prefect_harness")


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory, prefect_harness) -> tuple[Path, Path, dict]:
    root = tmp_path_factory.mktemp("seeded")
    seeds, data = root / "seeds", root / "data"
    shutil.copytree(Path(__file__).resolve().parents[1] / "seeds", seeds)
    summary = ingest(seeds_dir=str(seeds), data_dir=str(data))
    return seeds, data, summary


def test_seeds_give_the_documented_figures(seeded) -> None:
    _, data, summary = seeded
    occurrences = read_dataset(data, OCCURRENCES)
    articles = read_dataset(data, ARTICLES)
    spans = read_dataset(data, SPANS)
    files = read_dataset(data, FILES)
    assert occurrences.height == 25
    assert articles.height == 20
    assert articles.filter(pl.col(C.kind) == "main").height == 5
    assert files.height == 5 and set(files.get_column(C.status)) == {STATUS_PROCESSED}
    assert spans.height == 9
    assert set(spans.get_column(C.source_file)) == {"003_cdf2a856273f76b8.txt"}
    assert set(spans.get_column(C.lang)) == {"zh-cn"}
    assert summary["articles_new"] == 20 and summary["spans"] == 9


def test_the_five_related_articles_shared_by_001_and_002_have_the_same_ids(seeded) -> None:
    _, data, _ = seeded
    occ = read_dataset(data, OCCURRENCES).filter(pl.col(C.kind) == "related")
    ids = {
        f: set(occ.filter(pl.col(C.source_file).str.starts_with(f)).get_column(C.article_id))
        for f in ("001", "002")
    }
    assert len(ids["001"]) == 5 and ids["001"] == ids["002"]


def test_release_times_are_local_shanghai_time(seeded) -> None:
    _, data, _ = seeded
    main = read_dataset(data, ARTICLES).filter(pl.col(C.kind) == "main").sort(C.published_at, nulls_last=True)
    got = [None if t is None else t.strftime("%Y-%m-%d %H:%M %z") for t in main.get_column(C.published_at).to_list()]
    assert got == ["2024-04-13 21:49 +0800", "2024-04-15 19:48 +0800", "2024-05-17 17:21 +0800", "2024-06-06 12:01 +0800", None]
    partitions = read_dataset(data, ARTICLES).select(C.year, C.month).unique().sort(C.year, C.month).rows()
    assert ("unknown", "unknown") in partitions and ("2024", "05") in partitions


def test_span_offsets_point_into_the_decoded_source(seeded) -> None:
    seeds, data, _ = seeded
    for row in read_dataset(data, SPANS).iter_rows(named=True):
        text = (seeds / row[C.source_file]).read_text(encoding="utf-8")
        assert text[row[C.char_start] : row[C.char_end]] == row[C.text]
        assert not any(ch.isascii() and ch.isalpha() for ch in row[C.text])
    for row in read_dataset(data, SEGMENTS).head(200).iter_rows(named=True):
        text = (seeds / row[C.source_file]).read_text(encoding="utf-8")
        assert text[row[C.char_start] : row[C.char_end]] == row[C.text]


def test_the_run_is_recorded_in_prefect_with_artifacts(seeded) -> None:
    async def read() -> tuple[list, list]:
        async with get_client() as client:
            runs = await client.read_flow_runs()
            artifacts = await client.read_artifacts()
            return runs, artifacts

    import asyncio

    runs, artifacts = asyncio.run(read())
    assert any(r.state and r.state.is_completed() for r in runs)
    keys = {a.key for a in artifacts}
    assert {"ingest-files", "ingest-summary", "ingest-progress"} <= keys
    progress = [a for a in artifacts if a.key == "ingest-progress"]
    assert all(float(a.data) == 100.0 for a in progress)


def test_rerun_is_idempotent_byte_for_byte(seeded) -> None:
    seeds, data, _ = seeded
    before = tree_digest(data)
    summary = ingest(seeds_dir=str(seeds), data_dir=str(data))
    assert summary["files_unchanged"] == 5 and summary["articles_new"] == 0
    assert tree_digest(data) == before


def test_adding_one_file_adds_only_its_rows(tmp_path: Path, seeds_copy: Path) -> None:
    data = tmp_path / "data"
    (seeds_copy / "004_846bab0cc5ac146f.txt").rename(tmp_path / "004.txt")
    ingest(seeds_dir=str(seeds_copy), data_dir=str(data))
    before = read_dataset(data, OCCURRENCES)
    shutil.move(tmp_path / "004.txt", seeds_copy / "004_846bab0cc5ac146f.txt")
    summary = ingest(seeds_dir=str(seeds_copy), data_dir=str(data))
    after = read_dataset(data, OCCURRENCES)
    assert summary["files_processed"] == 1 and summary["files_unchanged"] == 4
    added = after.join(before, on=[C.source_file, C.ordinal], how="anti")
    assert set(added.get_column(C.source_file)) == {"004_846bab0cc5ac146f.txt"}
    assert added.height == 6 and after.height == 25
    assert before.join(after, on=[C.source_file, C.ordinal, C.article_id], how="anti").height == 0


def test_a_changed_file_replaces_its_earlier_rows(tmp_path: Path, seeds_copy: Path) -> None:
    data = tmp_path / "data"
    ingest(seeds_dir=str(seeds_copy), data_dir=str(data))
    page = seeds_copy / "003_cdf2a856273f76b8.txt"
    page.write_text(page.read_text(encoding="utf-8").replace("陈吉宁在调研中表示,要", "Chen Jining said, "), encoding="utf-8")
    summary = ingest(seeds_dir=str(seeds_copy), data_dir=str(data))
    assert summary["files_processed"] == 1
    spans = read_dataset(data, SPANS)
    assert spans.height == 8
    assert read_dataset(data, ARTICLES).height == 20  # the old 003 article is gone, the new one is in
    occ = read_dataset(data, OCCURRENCES).filter(pl.col(C.source_file).str.starts_with("003"))
    assert occ.height == 1
    files = read_dataset(data, FILES)
    assert files.height == 5


def test_bad_files_are_quarantined_and_the_run_goes_on(tmp_path: Path, seeds_copy: Path) -> None:
    data = tmp_path / "data"
    (seeds_copy / "empty.txt").write_bytes(b"")
    (seeds_copy / "image.txt").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(200))
    summary = ingest(seeds_dir=str(seeds_copy), data_dir=str(data))
    files = read_dataset(data, FILES)
    quarantined = files.filter(pl.col(C.status) == STATUS_QUARANTINED).sort(C.source_file)
    assert quarantined.get_column(C.source_file).to_list() == ["empty.txt", "image.txt"]
    assert "empty" in quarantined.get_column(C.reason)[0]
    assert "PNG" in quarantined.get_column(C.reason)[1]
    assert summary["files_processed"] == 5 and summary["files_quarantined"] == 2
    assert read_dataset(data, ARTICLES).height == 20


def test_near_duplicate_of_a_main_article_is_linked_across_runs(tmp_path: Path, seeds_copy: Path) -> None:
    data = tmp_path / "data"
    ingest(seeds_dir=str(seeds_copy), data_dir=str(data))
    original = (seeds_copy / "000_679cc89de41e4925.txt").read_text(encoding="utf-8")
    variant = original.replace("signed a strategic cooperation agreement in Shanghai today", "signed a strategic cooperation agreement in Shanghai on Friday", 1)
    (seeds_copy / "later" ).mkdir()
    (seeds_copy / "later" / "000_variant.txt").write_text(variant.replace("May 17, 2024", "May 18, 2024", 1), encoding="utf-8")
    ingest(seeds_dir=str(seeds_copy), data_dir=str(data))
    dups = read_dataset(data, DUPLICATES)
    main_ids = read_dataset(data, OCCURRENCES).filter((pl.col(C.kind) == "main") & pl.col(C.source_file).str.contains("000_")).sort(C.source_file)
    original_id, variant_id = main_ids.get_column(C.article_id).to_list()
    link = dups.filter(pl.col(C.article_id) == variant_id)
    assert link.height == 1
    assert link.get_column(C.duplicate_of)[0] == original_id  # the earlier publication is canonical
    assert link.get_column(C.similarity)[0] >= 0.8


def test_a_lost_or_outdated_index_is_rebuilt_from_the_stored_articles(tmp_path: Path, seeds_copy: Path) -> None:
    # An index folder of another signature scheme (or none at all) must not hide old articles
    # from near-duplicate search: the next run re-signs them from data/articles.
    data = tmp_path / "data"
    ingest(seeds_dir=str(seeds_copy), data_dir=str(data))
    index_before = read_dataset(data, MINHASH_INDEX).sort(C.article_id)
    shutil.rmtree(data / MINHASH_INDEX.name)
    original = (seeds_copy / "000_679cc89de41e4925.txt").read_text(encoding="utf-8")
    variant = original.replace("signed a strategic cooperation agreement in Shanghai today", "signed a strategic cooperation agreement in Shanghai on Friday", 1)
    (seeds_copy / "000_variant.txt").write_text(variant, encoding="utf-8")
    ingest(seeds_dir=str(seeds_copy), data_dir=str(data))
    index_after = read_dataset(data, MINHASH_INDEX).sort(C.article_id)
    assert index_after.height == index_before.height + 1  # 20 re-signed + the variant
    assert index_after.join(index_before, on=C.article_id, how="semi").equals(index_before)  # same signatures
    assert read_dataset(data, DUPLICATES).height == 1  # the variant met its stored original


def test_batches_in_worker_processes_give_the_same_datasets(tmp_path: Path, seeds_copy: Path) -> None:
    one = ingest(seeds_dir=str(seeds_copy), data_dir=str(tmp_path / "one"))
    many = ingest(seeds_dir=str(seeds_copy), data_dir=str(tmp_path / "many"), batch_bytes=1, workers=2)
    assert one["articles_new"] == many["articles_new"] == 20
    assert without_manifest(tree_digest(tmp_path / "one")) == without_manifest(tree_digest(tmp_path / "many"))
    assert set(many["step_seconds"]) >= {"load", "segment", "tag", "enrich", "dedup", "write"}


def test_a_task_run_processes_several_batches_and_the_datasets_stay_the_same(tmp_path: Path, seeds_copy: Path) -> None:
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    from tasks.pipeline.planning import discover_files, plan_work

    sizes = sorted(f.n_bytes for f in discover_files(seeds_copy))
    task_bytes = sizes[-1] + sizes[-2]  # two files a task at least, one file a batch
    one = ingest(seeds_dir=str(seeds_copy), data_dir=str(tmp_path / "one"))
    grouped = ingest(seeds_dir=str(seeds_copy), data_dir=str(tmp_path / "grouped"), batch_bytes=1, task_bytes=task_bytes, workers=2)
    plan = plan_work(discover_files(seeds_copy), 1, task_bytes, workers=2)
    assert len(plan.batches) == 5 and 1 < len(plan.tasks) < 5

    async def batch_task_runs(flow_run_id: str) -> list[str]:
        async with get_client() as client:
            runs = await client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
            return sorted(r.name for r in runs if r.name.startswith("process-batches"))

    import asyncio

    names = asyncio.run(batch_task_runs(grouped["run_id"]))
    assert names == sorted(f"process-batches-{t[0]}-{t[-1]}" for t in plan.tasks)
    assert without_manifest(tree_digest(tmp_path / "one")) == without_manifest(tree_digest(tmp_path / "grouped"))
    assert grouped["files_processed"] == one["files_processed"] == 5
    t = grouped["timeline"]  # where the wall time went, in seconds from the flow's start
    assert 0 <= t["batches_submitted"] <= t["first_batch_started"] <= t["last_batch_ended"] <= t["batches_collected"]
    assert t["batches_collected"] <= t["committed"] <= grouped["wall_seconds"]
    assert t["worker_busy"] > 0 and t["worker_idle"] >= 0


def test_the_batch_timeline_counts_a_worker_idle_while_the_other_runs_the_last_batch() -> None:
    from tasks.pipeline.batch import BatchResult

    def ran(start: float, end: float) -> BatchResult:
        return BatchResult(None, started_at=100 + start, ended_at=100 + end)

    # two workers: 0-3 and 0-2, then 3-4 and 2-6: the first worker waits from 4 to 6
    t = batch_timeline([ran(0, 3), ran(0, 2), ran(3, 4), ran(2, 6)], started=99.5, submitted=99.75, collected=106.5, workers=2)
    assert t == {
        "batches_submitted": 0.25,
        "batches_collected": 7.0,
        "first_batch_started": 0.5,
        "last_batch_ended": 6.5,
        "worker_busy": 10.0,
        "worker_idle": 2.0,
    }


def test_a_worker_killed_mid_run_fails_the_run_and_the_next_run_gets_a_fresh_pool(
    tmp_path: Path, seeds_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from concurrent.futures.process import BrokenProcessPool

    data = tmp_path / "data"
    # Read at import by the spawned pool workers only (this process imported the module before).
    monkeypatch.setenv("NEWSFLOW_KILL_AT", "decode:2")
    with pytest.raises(BrokenProcessPool):
        ingest(seeds_dir=str(seeds_copy), data_dir=str(data), batch_bytes=1, workers=2)
    monkeypatch.delenv("NEWSFLOW_KILL_AT")
    assert not (data / ARTICLES.name).exists()  # nothing committed
    again = ingest(seeds_dir=str(seeds_copy), data_dir=str(data), batch_bytes=1, workers=2)
    assert again["files_processed"] == 5
    clean = tmp_path / "clean"
    ingest(seeds_dir=str(seeds_copy), data_dir=str(clean))
    assert without_manifest(tree_digest(data)) == without_manifest(tree_digest(clean))


@pytest.fixture
def fresh_data(seeded, tmp_path: Path) -> tuple[Path, Path, Path]:
    """(the seeds, the data dir of a clean run over them, an empty data dir for this test)."""
    seeds, clean, _ = seeded
    return seeds, clean, tmp_path / "data"


def _staged_parquet(data: Path) -> list[Path]:
    return sorted((data / "_staging").rglob("*.parquet"))


def _wait_until(condition, what: str, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.01)


def _assert_nothing_committed_and_a_rerun_is_clean(seeds: Path, data: Path, clean: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The run waited for its staging thread: none is left writing into data/ after the failure.
    assert not [t for t in threading.enumerate() if t.name.startswith("newsflow-stage")]
    assert not (data / ARTICLES.name).exists()  # nothing committed
    assert not list((data / "_staging").rglob(".*.tmp"))  # whole files only: no write was cut off
    monkeypatch.undo()
    again = ingest(seeds_dir=str(seeds), data_dir=str(data))
    assert again["files_processed"] == 5 and not _staged_parquet(data)  # recovery discarded the failed run's files
    assert without_manifest(tree_digest(data)) == without_manifest(tree_digest(clean))


def test_datasets_are_staged_while_the_near_duplicate_search_runs(fresh_data, monkeypatch: pytest.MonkeyPatch) -> None:
    # Each side waits for the other: the search until staging has written a file, staging's
    # last dataset (the manifest) until the search has begun. Run one after the other, in
    # either order, one of the waits would time out.
    seeds, clean, data = fresh_data
    search, stage = dedupe.find_near_duplicates, ingest_module.stage_update
    search_began = threading.Event()

    def search_once_staging_has_begun(index, texts, threshold):
        search_began.set()
        _wait_until(lambda: _staged_parquet(data), "staging did not start while the search ran")
        return search(index, texts, threshold=threshold)

    def stage_the_manifest_once_the_search_has_begun(data_dir, run_id, spec, *args, **kwargs):
        if spec is FILES:
            assert search_began.wait(120), "the search had not begun when staging reached its last dataset"
        return stage(data_dir, run_id, spec, *args, **kwargs)

    monkeypatch.setattr(dedupe, "find_near_duplicates", search_once_staging_has_begun)
    monkeypatch.setattr(ingest_module, "stage_update", stage_the_manifest_once_the_search_has_begun)
    summary = ingest(seeds_dir=str(seeds), data_dir=str(data))
    assert summary["articles_new"] == 20
    assert 0 < summary["global_steps_seconds"] < summary["wall_seconds"]
    assert without_manifest(tree_digest(data)) == without_manifest(tree_digest(clean))


def test_a_run_whose_spill_is_over_the_overlap_budget_stages_after_the_search(fresh_data, monkeypatch: pytest.MonkeyPatch) -> None:
    # Above the budget the two steps hold too much memory side by side: one after the other.
    seeds, clean, data = fresh_data
    search, stage = dedupe.find_near_duplicates, ingest_module.stage_update
    order = []

    def recording_search(index, texts, threshold):
        # no staging thread exists yet: the executor starts it at the first submit
        order.append(("search", len(_staged_parquet(data)), [t.name for t in threading.enumerate() if t.name.startswith("newsflow-stage")]))
        return search(index, texts, threshold=threshold)

    def recording_stage(data_dir, run_id, spec, *args, **kwargs):
        order.append((spec.name,))
        return stage(data_dir, run_id, spec, *args, **kwargs)

    monkeypatch.setattr(ingest_module, "OVERLAP_MAX_SPILL_BYTES", 0)
    monkeypatch.setattr(dedupe, "find_near_duplicates", recording_search)
    monkeypatch.setattr(ingest_module, "stage_update", recording_stage)
    ingest(seeds_dir=str(seeds), data_dir=str(data))
    assert order[0] == ("search", 0, [])  # before any dataset was staged, with no staging thread
    assert [step[0] for step in order[1:]] == [MINHASH_INDEX.name, ARTICLES.name, OCCURRENCES.name, SEGMENTS.name, SPANS.name, FILES.name, DUPLICATES.name]
    assert without_manifest(tree_digest(data)) == without_manifest(tree_digest(clean))


def test_a_failed_search_stops_staging_waits_for_it_and_commits_nothing(fresh_data, monkeypatch: pytest.MonkeyPatch) -> None:
    seeds, clean, data = fresh_data
    stage, stage_rows = ingest_module.stage_update, ingest_module.stage_run_rows
    staging_articles = threading.Event()
    stops: list[threading.Event] = []  # the staging thread's stop signal
    staged_specs = []

    def failing_search(index, texts, threshold):
        _wait_until(staging_articles.is_set, "staging did not reach the articles")
        raise RuntimeError("near-duplicate search failed")

    def stage_rows_keeping_the_stop_signal(*args):
        stops.append(args[-1])
        return stage_rows(*args)

    def recording_stage(data_dir, run_id, spec, *args, **kwargs):
        staged_specs.append(spec.name)
        if spec is ARTICLES:  # the search fails while this dataset is being staged
            staging_articles.set()
            assert stops[0].wait(120), "the failed search did not signal staging to stop"
        return stage(data_dir, run_id, spec, *args, **kwargs)

    monkeypatch.setattr(dedupe, "find_near_duplicates", failing_search)
    monkeypatch.setattr(ingest_module, "stage_run_rows", stage_rows_keeping_the_stop_signal)
    monkeypatch.setattr(ingest_module, "stage_update", recording_stage)
    with pytest.raises(RuntimeError, match="near-duplicate search failed"):
        ingest(seeds_dir=str(seeds), data_dir=str(data))
    assert staged_specs == [MINHASH_INDEX.name, ARTICLES.name]  # the dataset under way finished; no further one began
    _assert_nothing_committed_and_a_rerun_is_clean(seeds, data, clean, monkeypatch)


def test_a_failed_stage_fails_the_run_after_the_search_and_commits_nothing(fresh_data, monkeypatch: pytest.MonkeyPatch) -> None:
    seeds, clean, data = fresh_data
    search, stage = dedupe.find_near_duplicates, ingest_module.stage_update
    staging_failed, searched = threading.Event(), []

    def search_after_staging_failed(index, texts, threshold):
        _wait_until(staging_failed.is_set, "staging did not fail")
        searched.append(search(index, texts, threshold=threshold))
        return searched[-1]

    def stage_failing_on_segments(data_dir, run_id, spec, *args, **kwargs):
        if spec is SEGMENTS:
            staging_failed.set()
            raise OSError("No space left on device (staging segments)")
        return stage(data_dir, run_id, spec, *args, **kwargs)

    monkeypatch.setattr(dedupe, "find_near_duplicates", search_after_staging_failed)
    monkeypatch.setattr(ingest_module, "stage_update", stage_failing_on_segments)
    with pytest.raises(OSError, match="staging segments"):
        ingest(seeds_dir=str(seeds), data_dir=str(data))
    assert len(searched) == 1  # the search ran to its end before the staging error went up
    assert _staged_parquet(data)  # the datasets before segments were staged, then left for recovery
    _assert_nothing_committed_and_a_rerun_is_clean(seeds, data, clean, monkeypatch)


def test_when_search_and_staging_both_fail_the_error_names_both(fresh_data, monkeypatch: pytest.MonkeyPatch) -> None:
    seeds, clean, data = fresh_data
    staging_failed = threading.Event()

    def failing_search(index, texts, threshold):
        _wait_until(staging_failed.is_set, "staging did not fail")
        raise RuntimeError("near-duplicate search failed")

    def failing_stage(data_dir, run_id, spec, *args, **kwargs):
        staging_failed.set()
        raise OSError("No space left on device (staging)")

    monkeypatch.setattr(dedupe, "find_near_duplicates", failing_search)
    monkeypatch.setattr(ingest_module, "stage_update", failing_stage)
    with pytest.raises(RuntimeError, match="near-duplicate search failed") as failed:
        ingest(seeds_dir=str(seeds), data_dir=str(data))
    assert any("No space left on device (staging)" in note for note in getattr(failed.value, "__notes__", []))
    _assert_nothing_committed_and_a_rerun_is_clean(seeds, data, clean, monkeypatch)


def test_a_file_uri_data_dir_gives_the_same_datasets_as_the_plain_path(seeded, tmp_path: Path) -> None:
    seeds, data, _ = seeded
    summary = ingest(seeds_dir=str(seeds), data_dir=f"file://{tmp_path}/data")
    assert summary["articles_new"] == 20
    assert without_manifest(tree_digest(tmp_path / "data")) == without_manifest(tree_digest(data))
    assert read_dataset(tmp_path / "data", FILES).height == 5


def test_an_object_store_data_dir_gives_the_same_datasets_and_reruns_idempotently(seeded, memory_uri: str) -> None:
    seeds, data, _ = seeded
    summary = ingest(seeds_dir=str(seeds), data_dir=memory_uri)
    assert summary["articles_new"] == 20 and summary["spans"] == 9
    store = open_data_dir(memory_uri)
    fs = store.filesystem()
    remote = {rel: hashlib.sha256(fs.open_input_stream(store.full(rel)).read()).hexdigest() for rel in store.list_files("", "part-0.parquet")}
    assert without_manifest(remote) == without_manifest(tree_digest(data))
    assert store.list_dirs("_staging") == []  # committed and cleaned up
    again = ingest(seeds_dir=str(seeds), data_dir=memory_uri)
    assert again["files_unchanged"] == 5 and again["articles_new"] == 0
    assert read_dataset(memory_uri, ARTICLES).height == 20


def test_file_table_artifact_is_bounded_and_shows_quarantined_files_first() -> None:
    from flows.ingest import file_table_rows
    from tasks.pipeline.batch import FileOutcome

    outcomes = [FileOutcome(f"p{i:05d}.txt", STATUS_PROCESSED, "ab", 10, "utf-8", None, 2) for i in range(2500)]
    outcomes.insert(1234, FileOutcome("zz-bad.txt", STATUS_QUARANTINED, None, 0, None, "empty file"))
    rows = file_table_rows(outcomes, limit=100)
    assert len(rows) == 100  # a 79,308-file backfill must not become a 79,308-row UI table
    assert rows[0] == {"file": "zz-bad.txt", "status": STATUS_QUARANTINED, "articles": 0, "bytes": 0, "encoding": "", "reason": "empty file"}
    assert [r["file"] for r in rows[1:3]] == ["p00000.txt", "p00001.txt"]
    assert len(file_table_rows(outcomes[:7])) == 7  # small runs: every file


def test_article_texts_are_read_from_a_spill_whose_path_looks_like_a_glob_pattern(seeds_dir: Path, tmp_path: Path) -> None:
    # Near-duplicate verification reads candidate texts back from the spill: a data dir
    # named like `data[1]` is a path, not a pattern (polars would expand it to no files).
    root = tmp_path / "data[1]" / "spill"
    files = sorted(p.name for p in seeds_dir.glob("*.txt"))
    result = process_files(seeds_dir, files, {}, Spill(str(root), 0))
    rows = RunRows.gather(root, [result])
    ids = rows.winners.get_column(C.article_id).to_list()[:3]
    texts = rows.article_texts(ids)
    assert sorted(texts.get_column(C.article_id).to_list()) == sorted(ids)
    assert all(len(t) > 0 for t in texts.get_column(texts.columns[1]).to_list())
