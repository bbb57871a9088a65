"""tasks/storage/commit.py and parquet.py: partitioned, sorted, atomic Parquet writes and crash recovery."""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import polars as pl
import pyarrow.parquet as pq
import pytest

import tasks.storage.commit as write_module
from tasks.schema import ARTICLES, COMPRESSION, COMPRESSION_LEVEL, OCCURRENCES, TIMEZONE, UNKNOWN_PARTITION, C
from tasks.storage.commit import COMMIT_FILE, CommitPlan, commit, recover, stage_update, staging_root
from tasks.storage.parquet import PART_FILE, read_dataset, source_bucket, with_partition_columns, write_parquet_atomic
from tasks.storage.spill import SpilledRows, spill_frame, spill_root
from tasks.storage.stores import STAGING_DIR, open_data_dir

SH = ZoneInfo(TIMEZONE)


def _articles(ids: list[str], dates: list[datetime | None]) -> pl.DataFrame:
    n = len(ids)
    return pl.DataFrame(
        {
            C.article_id: ids,
            C.kind: ["main"] * n,
            C.title: [f"t{i}" for i in ids],
            C.tags: [["x"]] * n,
            C.published_at: pl.Series(dates, dtype=pl.Datetime("us", TIMEZONE)),
            C.body: ["body"] * n,
            C.n_chars: [4] * n,
            C.n_words: [1] * n,
            C.n_paragraphs: [1] * n,
            C.untranslated_ratio: [0.0] * n,
            C.people: [[]] * n,
            C.places: [[]] * n,
            C.organizations: [[]] * n,
            C.keywords: [[]] * n,
        },
        schema_overrides={
            C.people: pl.List(pl.String),
            C.places: pl.List(pl.String),
            C.organizations: pl.List(pl.String),
            C.keywords: pl.List(pl.String),
        },
    )


def test_articles_are_partitioned_by_year_and_month_with_an_unknown_partition(tmp_path: Path) -> None:
    rows = _articles(["b", "a", "c"], [datetime(2024, 5, 17, 17, 21, tzinfo=SH), datetime(2024, 5, 1, tzinfo=SH), None])
    commit(tmp_path, stage_update(tmp_path, "run1", ARTICLES, rows))
    parts = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.parquet"))
    assert parts == [
        "articles/year=2024/month=05/part-0.parquet",
        f"articles/year={UNKNOWN_PARTITION}/month={UNKNOWN_PARTITION}/part-0.parquet",
    ]
    may = pq.read_table(tmp_path / parts[0])
    assert may.column(C.article_id).to_pylist() == ["a", "b"]  # sorted by the spec's key
    assert pq.ParquetFile(tmp_path / parts[0]).metadata.row_group(0).column(0).compression == "ZSTD"
    back = read_dataset(tmp_path, ARTICLES)
    assert sorted(back.get_column(C.article_id).to_list()) == ["a", "b", "c"]
    assert back.schema[C.published_at] == pl.Datetime("us", TIMEZONE)


def test_update_rewrites_only_touched_partitions_and_deletes_rows(tmp_path: Path) -> None:
    occ = pl.DataFrame(
        {
            C.article_id: ["x", "y", "z"],
            C.source_file: ["a.txt", "a.txt", "b.txt"],
            C.source_sha256: ["1", "1", "2"],
            C.ordinal: [0, 1, 0],
            C.kind: ["main", "related", "main"],
            C.char_start: [0, 10, 0],
            C.char_end: [5, 20, 9],
        }
    )
    commit(tmp_path, stage_update(tmp_path, "r1", OCCURRENCES, occ))
    assert not (tmp_path / "_staging").exists()  # a committed run leaves no staging folder
    b_part = tmp_path / f"occurrences/source_bucket={source_bucket('b.txt')}/part-0.parquet"
    before = b_part.stat().st_mtime_ns
    replaced = occ.filter(pl.col(C.source_file) == "a.txt").head(1).with_columns(pl.lit("3").alias(C.source_sha256))
    plan = stage_update(tmp_path, "r2", OCCURRENCES, replaced, delete_where=pl.col(C.source_file) == "a.txt")
    assert all(source_bucket("a.txt") in w for w in plan.writes)
    commit(tmp_path, plan)
    back = read_dataset(tmp_path, OCCURRENCES).sort(C.source_file)
    assert back.get_column(C.article_id).to_list() == ["x", "z"]
    assert back.get_column(C.source_sha256).to_list() == ["3", "2"]
    assert b_part.stat().st_mtime_ns == before  # untouched partition left alone


def test_an_interrupted_run_is_rolled_back_and_a_committed_one_forward(tmp_path: Path) -> None:
    rows = _articles(["a"], [None])
    commit(tmp_path, stage_update(tmp_path, "old", ARTICLES, rows))
    # crash after staging, before the commit record: the staged files must vanish
    stage_update(tmp_path, "crashed", ARTICLES, _articles(["b"], [None]))
    assert staging_root(tmp_path, "crashed").exists()
    # crash after the commit record, before the renames: the run must be completed
    plan = stage_update(tmp_path, "committed", ARTICLES, _articles(["c"], [None]))
    root = staging_root(tmp_path, "committed")
    (root / COMMIT_FILE).write_text(json.dumps({"run_id": "committed", "writes": plan.writes, "deletes": []}))
    done = recover(tmp_path)
    assert done == ["rolled forward committed run committed", "discarded interrupted run crashed"]
    assert read_dataset(tmp_path, ARTICLES).get_column(C.article_id).to_list() == ["a", "c"]
    assert not (tmp_path / "_staging").exists()  # nor the folder itself, once no run is staged there


def test_same_rows_give_the_same_bytes(tmp_path: Path) -> None:
    rows = _articles(["b", "a"], [datetime(2024, 4, 13, 21, 49, tzinfo=SH)] * 2)
    for name in ("one", "two"):
        commit(tmp_path / name, stage_update(tmp_path / name, "r", ARTICLES, rows.reverse() if name == "two" else rows))
    a = (tmp_path / "one/articles/year=2024/month=04/part-0.parquet").read_bytes()
    b = (tmp_path / "two/articles/year=2024/month=04/part-0.parquet").read_bytes()
    assert a == b


@pytest.mark.parametrize(("writers", "bytes_in_flight", "at_once"), [(2, 1, 1), (2, 1 << 30, 2), (3, 1 << 30, 3)])
def test_partitions_encoded_at_once_are_the_bytes_of_one_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, writers: int, bytes_in_flight: int, at_once: int
) -> None:
    # twelve months and the unknown month of articles; a second run re-delivers a third of
    # them with a new body and deletes month 03 whole: how many partitions are encoded at once
    # must change neither the files nor the plan
    months = [datetime(2024, m, 3, tzinfo=SH) for m in range(1, 13)] + [None]
    first = _articles([f"a{i:02d}" for i in range(39)], [months[i % 13] for i in range(39)])
    again = [i for i in range(0, 39, 3) if i % 13 != 2]
    second = _articles([f"a{i:02d}" for i in again], [months[i % 13] for i in again]).with_columns(
        pl.lit("new").alias(C.body)
    )
    month_03 = pl.col(C.article_id).is_in(["a02", "a15", "a28"])
    real_write, writing, most, lock = write_module.write_parquet_atomic, [0], [0], threading.Lock()

    def slow_write(*args) -> None:  # a slow disk: a partition's write lasts long enough to overlap
        with lock:
            writing[0] += 1
            most[0] = max(most[0], writing[0])
        time.sleep(0.02)
        real_write(*args)
        with lock:
            writing[0] -= 1

    def two_runs(data: Path) -> tuple[CommitPlan, dict[str, bytes]]:
        commit(data, stage_update(data, "r1", ARTICLES, first))
        plan = stage_update(data, "r2", ARTICLES, second, delete_where=month_03)
        commit(data, plan)
        return plan, {str(f.relative_to(data)): f.read_bytes() for f in sorted(data.rglob("*.parquet"))}

    monkeypatch.setattr(write_module, "write_parquet_atomic", slow_write)
    monkeypatch.setattr(write_module, "STAGE_WRITERS", 1)
    serial_plan, serial = two_runs(tmp_path / "serial")
    assert most[0] == 1
    monkeypatch.setattr(write_module, "STAGE_WRITERS", writers)
    monkeypatch.setattr(write_module, "STAGE_BYTES_IN_FLIGHT", bytes_in_flight)
    plan, files = two_runs(tmp_path / "parallel")
    assert most[0] == at_once
    assert len(files) == 12 and not any("month=03" in f for f in files)
    assert files == serial
    assert (plan.writes, plan.deletes) == (serial_plan.writes, serial_plan.deletes)
    assert plan.writes == sorted(plan.writes) and plan.deletes == ["articles/year=2024/month=03/part-0.parquet"]
    assert read_dataset(tmp_path / "parallel", ARTICLES).filter(pl.col(C.body) == "new").height == len(again)


def test_a_failed_partition_write_fails_the_stage_and_recovery_discards_what_was_staged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = _articles([f"a{i}" for i in range(12)], [datetime(2024, 1 + i, 3, tzinfo=SH) for i in range(12)])
    real_write = write_module.write_parquet_atomic
    attempted: list[str] = []

    def write_or_fail(spec, frame, data_dir, rel):  # a full disk on one partition, mid-stage
        attempted.append(rel)
        if "month=05" in rel:
            raise OSError(28, "No space left on device", rel)
        real_write(spec, frame, data_dir, rel)

    monkeypatch.setattr(write_module, "write_parquet_atomic", write_or_fail)
    with pytest.raises(OSError, match="month=05"):
        stage_update(tmp_path, "r1", ARTICLES, rows)
    # the failure stops the stage: past month 05, at most the partitions already handed to writers
    assert len(attempted) <= 5 + write_module.STAGE_WRITERS
    staged = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    assert staged and all("month=05" not in p and not p.endswith(".tmp") for p in staged)
    assert recover(tmp_path) == ["discarded interrupted run r1"]
    assert not any(p.is_file() for p in tmp_path.rglob("*"))


@pytest.mark.parametrize("n_rows", [0, 5, 2 * ARTICLES.row_group_rows + 7])
def test_a_partition_written_a_row_group_at_a_time_is_one_sorted_write_table(tmp_path: Path, n_rows: int) -> None:
    # the writer gathers one row group of the sort order at a time (bounded memory); the
    # file must be the very bytes of writing the whole sorted table at once
    ids = [f"{(i * 7919) % 100_003:06d}" for i in range(n_rows)]  # unsorted, unique
    frame = _articles(ids, [None] * n_rows)
    write_parquet_atomic(ARTICLES, frame, tmp_path, "streamed.parquet")
    whole = (
        frame.select([f.name for f in ARTICLES.file_schema]).sort(C.article_id).to_arrow().cast(ARTICLES.file_schema)
    )
    pq.write_table(
        whole,
        tmp_path / "whole.parquet",
        compression=COMPRESSION,
        compression_level=COMPRESSION_LEVEL,
        row_group_size=ARTICLES.row_group_rows,
        write_statistics=True,
    )
    assert (tmp_path / "streamed.parquet").read_bytes() == (tmp_path / "whole.parquet").read_bytes()
    meta = pq.ParquetFile(tmp_path / "streamed.parquet").metadata
    assert meta.num_rows == n_rows and meta.num_row_groups == max(1, -(-n_rows // ARTICLES.row_group_rows))
    assert pl.read_parquet(tmp_path / "streamed.parquet")[C.article_id].to_list() == sorted(ids)


def test_empty_plan_commits_nothing(tmp_path: Path) -> None:
    commit(tmp_path, CommitPlan("nothing"))
    assert read_dataset(tmp_path, ARTICLES).height == 0


def test_a_forged_commit_record_cannot_touch_files_outside_the_datasets(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    data = tmp_path / "data"
    root = staging_root(data, "forged")
    root.mkdir(parents=True)
    (root / COMMIT_FILE).write_text(json.dumps({"run_id": "forged", "writes": [], "deletes": ["../victim.txt"]}))
    with pytest.raises(ValueError, match="not a dataset file"):
        recover(data)
    assert victim.read_text() == "precious"


# --- data dirs given as filesystem URIs (tasks/storage/stores.py) ---


def _memory_tree(uri: str) -> dict[str, bytes]:
    store = open_data_dir(uri)
    rels = store.list_files("", PART_FILE)
    return {rel: store.filesystem().open_input_stream(store.full(rel)).read() for rel in rels}


def _local_tree(data: Path) -> dict[str, bytes]:
    return {p.relative_to(data).as_posix(): p.read_bytes() for p in sorted(data.rglob(PART_FILE))}


def _two_runs(data: str | Path) -> None:
    rows = _articles(["b", "a", "c"], [datetime(2024, 5, 17, tzinfo=SH), datetime(2024, 4, 1, tzinfo=SH), None])
    commit(data, stage_update(data, "r1", ARTICLES, rows))
    gone = pl.col(C.article_id) == "a"
    commit(
        data, stage_update(data, "r2", ARTICLES, _articles(["d"], [datetime(2024, 5, 2, tzinfo=SH)]), delete_where=gone)
    )


def test_a_file_uri_data_dir_gives_the_same_bytes_as_the_plain_path(tmp_path: Path) -> None:
    _two_runs(tmp_path / "plain")
    _two_runs(f"file://{tmp_path}/uri")
    assert _local_tree(tmp_path / "plain") == _local_tree(tmp_path / "uri")
    assert "articles/year=2024/month=04/part-0.parquet" not in _local_tree(tmp_path / "uri")  # emptied, deleted


def test_an_object_store_data_dir_holds_the_same_bytes_as_local_disk(tmp_path: Path, memory_uri: str) -> None:
    _two_runs(tmp_path / "plain")
    _two_runs(memory_uri)
    assert _memory_tree(memory_uri) == _local_tree(tmp_path / "plain")
    assert (
        read_dataset(memory_uri, ARTICLES)
        .sort(C.article_id)
        .equals(read_dataset(tmp_path / "plain", ARTICLES).sort(C.article_id))
    )
    assert open_data_dir(memory_uri).list_dirs(STAGING_DIR) == []  # staging removed after the commit


@pytest.mark.parametrize("kind", ["file", "memory"])
def test_recovery_through_a_uri_rolls_committed_runs_forward_and_interrupted_ones_back(
    kind: str, tmp_path: Path, memory_uri: str
) -> None:
    data = f"file://{tmp_path}/data" if kind == "file" else memory_uri
    store = open_data_dir(data)
    commit(data, stage_update(data, "old", ARTICLES, _articles(["a"], [None])))
    stage_update(data, "crashed", ARTICLES, _articles(["b"], [None]))  # no commit record
    plan = stage_update(data, "committed", ARTICLES, _articles(["c"], [None]))
    record = json.dumps({"run_id": "committed", "writes": plan.writes, "deletes": []})
    store.write_atomic(
        f"{STAGING_DIR}/committed/{COMMIT_FILE}",
        lambda w: Path(w).write_text(record) if isinstance(w, str) else w.write(record.encode()),
        "test",
    )
    assert read_dataset(data, ARTICLES).get_column(C.article_id).to_list() == ["a"]  # not applied yet
    assert recover(data) == ["rolled forward committed run committed", "discarded interrupted run crashed"]
    assert read_dataset(data, ARTICLES).get_column(C.article_id).to_list() == ["a", "c"]
    assert store.list_dirs(STAGING_DIR) == []
    assert recover(data) == []


def test_rolling_forward_again_after_a_crash_between_copy_and_delete_is_harmless(memory_uri: str) -> None:
    # On an object store a move is copy + delete: a crash between them leaves the staged
    # file and its copy in place; the next recovery copies again and finishes the run.
    store = open_data_dir(memory_uri)
    plan = stage_update(memory_uri, "r", ARTICLES, _articles(["a", "b"], [None, None]))
    record = json.dumps({"run_id": "r", "writes": plan.writes, "deletes": []})
    store.write_atomic(f"{STAGING_DIR}/r/{COMMIT_FILE}", lambda w: w.write(record.encode()), "test")
    (rel,) = plan.writes
    store.filesystem().copy_file(store.full(f"{STAGING_DIR}/r/{rel}"), store.full(rel))  # the copy, then "kill -9"
    assert recover(memory_uri) == ["rolled forward committed run r"]
    assert sorted(read_dataset(memory_uri, ARTICLES).get_column(C.article_id).to_list()) == ["a", "b"]
    assert store.list_files("", PART_FILE) == [rel]


def test_a_remote_data_dir_spills_locally_and_the_commit_removes_the_spill(memory_uri: str, tmp_path: Path) -> None:
    spill = spill_root(memory_uri, "r")
    assert spill.is_relative_to(tmp_path / "cache")
    spill_frame(spill, ARTICLES, _articles(["a"], [None]), 0)
    assert SpilledRows(spill, ARTICLES).read(f"articles/year={UNKNOWN_PARTITION}/month={UNKNOWN_PARTITION}").height == 1
    commit(memory_uri, stage_update(memory_uri, "r", ARTICLES, SpilledRows(spill, ARTICLES)))
    assert read_dataset(memory_uri, ARTICLES).get_column(C.article_id).to_list() == ["a"]
    assert not spill.exists()


def test_a_batch_spills_one_file_a_dataset_and_a_partition_reads_its_rows_from_every_batch(tmp_path: Path) -> None:
    may, june = datetime(2024, 5, 1, tzinfo=SH), datetime(2024, 6, 1, tzinfo=SH)
    spill_frame(tmp_path, ARTICLES, _articles(["a", "b", "c"], [june, None, may]), 0)
    spill_frame(tmp_path, ARTICLES, _articles(["d", "e"], [may, june]), 1)
    assert sorted(f.name for f in (tmp_path / ARTICLES.name).iterdir()) == ["b000000.arrow", "b000001.arrow"]
    rows = SpilledRows(tmp_path, ARTICLES)
    may_dir, june_dir = "articles/year=2024/month=05", "articles/year=2024/month=06"
    assert rows.partitions() == {may_dir, june_dir, f"articles/year={UNKNOWN_PARTITION}/month={UNKNOWN_PARTITION}"}
    may_rows = rows.read(may_dir)
    assert may_rows.get_column(C.article_id).to_list() == ["c", "d"]  # batch order
    assert may_rows.columns == [f.name for f in ARTICLES.file_schema]
    assert rows.read("articles/year=1999/month=01").height == 0


def test_reading_a_partition_a_few_bytes_at_a_time_keeps_the_same_rows(tmp_path: Path) -> None:
    for batch in range(4):
        ids = [f"{batch}-{i}" for i in range(5)]
        spill_frame(
            tmp_path, ARTICLES, _articles(ids, [None] * 5).with_columns(pl.lit(batch, pl.Int64).alias(C.batch)), batch
        )
    wanted = pl.DataFrame({C.article_id: ["0-1", "2-3", "3-0"], C.batch: [0, 2, 3]}).lazy()
    keep = lambda f: f.join(wanted, on=[C.article_id, C.batch], how="semi")  # noqa: E731
    unknown = f"articles/year={UNKNOWN_PARTITION}/month={UNKNOWN_PARTITION}"
    whole = SpilledRows(tmp_path, ARTICLES, keep).read(unknown)
    by_piece = SpilledRows(tmp_path, ARTICLES, keep, read_bytes=1).read(unknown)  # one batch's rows at a time
    assert whole.get_column(C.article_id).to_list() == ["0-1", "2-3", "3-0"]
    assert by_piece.equals(whole)


@pytest.mark.parametrize("read_bytes", [1, 200_000, 64 << 20])
def test_every_partition_reads_back_exactly_its_rows_however_many_are_read_together(
    tmp_path: Path, read_bytes: int
) -> None:
    # 3 batches of 1,500 articles over 30 months and the unknown partition, read a partition
    # at a time (read_bytes=1), a few at a time, or all at once
    spilled = []
    for batch in range(3):
        ids = [f"{batch}-{i:04d}" for i in range(1500)]
        dates = [
            None if i % 7 == 0 else datetime(2022 + i % 30 // 12, 1 + i % 30 % 12, 1, tzinfo=SH) for i in range(1500)
        ]
        frame = _articles(ids, dates)
        spill_frame(tmp_path, ARTICLES, frame, batch)
        spilled.append(frame)
    expected = with_partition_columns(ARTICLES, pl.concat(spilled))
    rows = SpilledRows(tmp_path, ARTICLES, read_bytes=read_bytes)
    assert len(rows.partitions()) == expected.select(C.year, C.month).n_unique() == 31
    for rel_dir in sorted(rows.partitions()):
        year, month = (kv.split("=")[1] for kv in rel_dir.split("/")[1:])
        want = expected.filter((pl.col(C.year) == year) & (pl.col(C.month) == month))
        assert rows.read(rel_dir).equals(want.select([f.name for f in ARTICLES.file_schema]))
