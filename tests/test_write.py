"""tasks/write.py: partitioned, sorted, atomic Parquet writes and crash recovery."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import polars as pl
import pyarrow.parquet as pq

from tasks.schema import ARTICLES, OCCURRENCES, TIMEZONE, UNKNOWN_PARTITION, C
from tasks.write import (
    COMMIT_FILE,
    CommitPlan,
    commit,
    read_dataset,
    recover,
    source_bucket,
    stage_update,
    staging_root,
)

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
        schema_overrides={C.people: pl.List(pl.String), C.places: pl.List(pl.String), C.organizations: pl.List(pl.String), C.keywords: pl.List(pl.String)},
    )


def test_articles_are_partitioned_by_year_and_month_with_an_unknown_partition(tmp_path: Path) -> None:
    rows = _articles(["b", "a", "c"], [datetime(2024, 5, 17, 17, 21, tzinfo=SH), datetime(2024, 5, 1, tzinfo=SH), None])
    commit(tmp_path, stage_update(tmp_path, "run1", ARTICLES, rows))
    parts = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.parquet"))
    assert parts == ["articles/year=2024/month=05/part-0.parquet", f"articles/year={UNKNOWN_PARTITION}/month={UNKNOWN_PARTITION}/part-0.parquet"]
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
    assert not (tmp_path / "_staging").exists() or not any((tmp_path / "_staging").iterdir())


def test_same_rows_give_the_same_bytes(tmp_path: Path) -> None:
    rows = _articles(["b", "a"], [datetime(2024, 4, 13, 21, 49, tzinfo=SH)] * 2)
    for name in ("one", "two"):
        commit(tmp_path / name, stage_update(tmp_path / name, "r", ARTICLES, rows.reverse() if name == "two" else rows))
    a = (tmp_path / "one/articles/year=2024/month=04/part-0.parquet").read_bytes()
    b = (tmp_path / "two/articles/year=2024/month=04/part-0.parquet").read_bytes()
    assert a == b


def test_empty_plan_commits_nothing(tmp_path: Path) -> None:
    commit(tmp_path, CommitPlan("nothing"))
    assert read_dataset(tmp_path, ARTICLES).height == 0


def test_a_forged_commit_record_cannot_touch_files_outside_the_datasets(tmp_path: Path) -> None:
    import pytest

    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    data = tmp_path / "data"
    root = staging_root(data, "forged")
    root.mkdir(parents=True)
    (root / COMMIT_FILE).write_text(json.dumps({"run_id": "forged", "writes": [], "deletes": ["../victim.txt"]}))
    with pytest.raises(ValueError, match="not a dataset file"):
        recover(data)
    assert victim.read_text() == "precious"
