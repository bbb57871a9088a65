"""flows/ingest.py end to end: real files, a real Prefect API, real Parquet read back."""

from __future__ import annotations

import hashlib
import shutil
import time
from pathlib import Path

import polars as pl
import pytest
from prefect.client.orchestration import get_client

from flows.ingest import ingest
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
from tasks.storage.parquet import read_dataset
from tasks.storage.stores import open_data_dir
from tests.conftest import seed_text, tree_digest, without_manifest

pytestmark = pytest.mark.usefixtures("prefect_harness")


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
        f: set(occ.filter(pl.col(C.source_file).str.starts_with(f)).get_column(C.article_id)) for f in ("001", "002")
    }
    assert len(ids["001"]) == 5 and ids["001"] == ids["002"]


def test_release_times_are_local_shanghai_time(seeded) -> None:
    _, data, _ = seeded
    main = read_dataset(data, ARTICLES).filter(pl.col(C.kind) == "main").sort(C.published_at, nulls_last=True)
    got = [None if t is None else t.strftime("%Y-%m-%d %H:%M %z") for t in main.get_column(C.published_at).to_list()]
    assert got == [
        "2024-04-13 21:49 +0800",
        "2024-04-15 19:48 +0800",
        "2024-05-17 17:21 +0800",
        "2024-06-06 12:01 +0800",
        None,
    ]
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
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    run_id = seeded[2]["run_id"]

    async def read() -> tuple:
        async with get_client() as client:
            run = await client.read_flow_run(run_id)
            artifacts = await client.read_artifacts(
                artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id]))
            )
            return run, artifacts

    import asyncio

    run, artifacts = asyncio.run(read())
    assert run.state.is_completed()
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


def _stat_tree(data: Path) -> dict[str, tuple[int, int]]:
    """(size, mtime) of the data folder, every file and every folder under it."""
    return {p.relative_to(data).as_posix(): (p.stat().st_size, p.stat().st_mtime_ns) for p in [data, *data.rglob("*")]}


def test_a_run_over_unchanged_input_writes_nothing(seeded) -> None:
    seeds, data, _ = seeded
    before = _stat_tree(data)
    time.sleep(0.01)  # a rewrite would show in the nanosecond mtimes
    summary = ingest(seeds_dir=str(seeds), data_dir=str(data))
    assert summary["files_unchanged"] == 5 and summary["partitions_written"] == 0
    assert _stat_tree(data) == before


def test_every_dataset_is_readable_from_the_first_run_even_when_empty(seeded) -> None:
    import duckdb
    import pyarrow.dataset as ds

    from tasks.schema import PUBLIC_DATASETS

    _, data, summary = seeded
    assert summary["near_duplicates_total"] == 0  # the seeds have none: `duplicates` holds no row
    for spec in PUBLIC_DATASETS:
        polars_rows = pl.scan_parquet(f"{data}/{spec.name}/**/*.parquet", hive_partitioning=True).collect()
        duck = duckdb.sql(
            f"SELECT count(*) FROM read_parquet('{data}/{spec.name}/**/*.parquet', hive_partitioning = true)"
        )
        arrow = ds.dataset(data / spec.name, format="parquet", partitioning="hive").to_table()
        assert polars_rows.height == duck.fetchall()[0][0] == arrow.num_rows, spec.name
        assert set(spec.full_schema.names) <= set(arrow.schema.names) | set(spec.partition_by), spec.name
    assert read_dataset(data, DUPLICATES).height == 0


def test_a_bad_parameter_fails_the_run_in_one_line_and_touches_nothing(tmp_path: Path, seeds_copy: Path) -> None:
    data = tmp_path / "data"
    state = ingest(seeds_dir=str(seeds_copy), data_dir=str(data), glob="../../etc/*", return_state=True)
    assert state.is_failed()
    assert state.message == "glob '../../etc/*' climbs out of the seeds folder with '..'; refused"
    state = ingest(seeds_dir=str(tmp_path / "missing"), data_dir=str(data), return_state=True)
    assert state.is_failed() and "seeds folder" in state.message and "does not exist" in state.message
    assert not data.exists()


def test_a_selection_that_matches_no_file_completes_and_says_so(tmp_path: Path, seeds_copy: Path) -> None:
    state = ingest(seeds_dir=str(seeds_copy), data_dir=str(tmp_path / "data"), glob="2024-*/*.txt", return_state=True)
    assert state.is_completed() and state.result()["files_seen"] == 0
    assert state.message == "no file matched the selection (glob, since, files): nothing ingested"


def test_a_file_quarantined_earlier_and_unchanged_is_reported_quarantined_and_a_fixed_one_is_picked_up(
    tmp_path: Path, seeds_copy: Path
) -> None:
    import asyncio

    data = tmp_path / "data"
    (seeds_copy / "empty.txt").write_bytes(b"")
    ingest(seeds_dir=str(seeds_copy), data_dir=str(data))
    state = ingest(seeds_dir=str(seeds_copy), data_dir=str(data), return_state=True)
    again = state.result()
    assert again["files_quarantined"] == 1 and again["files_quarantined_before"] == 1 and again["files_unchanged"] == 5
    assert again["quarantined"] == {
        "empty.txt": read_dataset(data, FILES).filter(pl.col(C.source_file) == "empty.txt")[C.reason][0]
    }
    assert state.is_completed() and state.message.startswith("1 file(s) quarantined, e.g. empty.txt: ")

    async def run_of(flow_run_id: str):
        async with get_client() as client:
            return await client.read_flow_run(flow_run_id)

    run = asyncio.run(run_of(again["run_id"]))
    assert "quarantined" in run.tags and run.name.endswith("-1-quarantined")
    (seeds_copy / "empty.txt").write_text(
        (seeds_copy / "000_679cc89de41e4925.txt").read_text().replace("Shanghai", "Hangzhou")
    )
    fixed = ingest(seeds_dir=str(seeds_copy), data_dir=str(data))
    assert fixed["files_processed"] == 1 and fixed["files_quarantined"] == 0
    assert read_dataset(data, FILES).filter(pl.col(C.status) == STATUS_QUARANTINED).height == 0


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
    page.write_text(
        page.read_text(encoding="utf-8").replace("陈吉宁在调研中表示,要", "Chen Jining said, "), encoding="utf-8"
    )
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
    variant = original.replace(
        "signed a strategic cooperation agreement in Shanghai today",
        "signed a strategic cooperation agreement in Shanghai on Friday",
        1,
    )
    (seeds_copy / "later").mkdir()
    (seeds_copy / "later" / "000_variant.txt").write_text(
        variant.replace("May 17, 2024", "May 18, 2024", 1), encoding="utf-8"
    )
    ingest(seeds_dir=str(seeds_copy), data_dir=str(data))
    dups = read_dataset(data, DUPLICATES)
    main_ids = (
        read_dataset(data, OCCURRENCES)
        .filter((pl.col(C.kind) == "main") & pl.col(C.source_file).str.contains("000_"))
        .sort(C.source_file)
    )
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
    variant = original.replace(
        "signed a strategic cooperation agreement in Shanghai today",
        "signed a strategic cooperation agreement in Shanghai on Friday",
        1,
    )
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
    grouped = ingest(
        seeds_dir=str(seeds_copy), data_dir=str(tmp_path / "grouped"), batch_bytes=1, task_bytes=task_bytes, workers=2
    )
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


@pytest.mark.slow  # child processes
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
    remote = {
        rel: hashlib.sha256(fs.open_input_stream(store.full(rel)).read()).hexdigest()
        for rel in store.list_files("", "part-0.parquet")
    }
    assert without_manifest(remote) == without_manifest(tree_digest(data))
    assert store.list_dirs("_staging") == []  # committed and cleaned up
    again = ingest(seeds_dir=str(seeds), data_dir=memory_uri)
    assert again["files_unchanged"] == 5 and again["articles_new"] == 0
    assert read_dataset(memory_uri, ARTICLES).height == 20


def test_the_summary_shows_the_runs_spans_with_their_gloss(seeded) -> None:
    from flows.summary import render_markdown, render_text

    summary = seeded[2]
    examples = summary["span_examples"]
    assert len(examples) == 9 and all(x["gloss"] and x["lang"] == "zh-cn" for x in examples)
    assert [x["text"] for x in examples] == sorted(
        (x["text"] for x in examples), key=lambda t: seed_text("003").index(t)
    )  # in the order of the page
    for rendered in (render_text(summary), render_markdown(summary)):
        assert "Untranslated spans" in rendered and "Chen Jining" in rendered
