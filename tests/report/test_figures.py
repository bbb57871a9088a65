"""tasks/report/figures.py: every number of the report against an independent DuckDB query
over the Parquet files (and the runs' JSON records), on the seeds and a 2 MB corpus."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import duckdb
import fsspec
import pytest

from flows.defaults import REPORT_RUNS as RUNS
from tasks.report import figures as F
from tasks.report import history
from tests.report.conftest import DataCase


@pytest.fixture(scope="module")
def fig(case: DataCase) -> F.Figures:
    return F.compute(case.data, None, history.read_records(case.data), history_runs=RUNS)


def source(case: DataCase, dataset: str) -> str:
    return f"read_parquet('{case.data}/{dataset}/**/*.parquet', hive_partitioning = true)"


def rows(sql: str, *params: Any) -> list[tuple]:
    return duckdb.execute(sql, list(params)).fetchall()


def one(sql: str, *params: Any) -> Any:
    return rows(sql, *params)[0][0]


def close(a: float | None, b: float | None) -> bool:
    return math.isclose(float(a or 0), float(b or 0), rel_tol=1e-9, abs_tol=1e-12)


def fixed_bins(table: str, value: str, lo: float, hi: float, n: int, where: str = "true") -> list[int]:
    width = (hi - lo) / n
    counts = dict(
        rows(f"""SELECT least(greatest(floor(({value} - {lo!r}) / {width!r}), 0), {n - 1})::BIGINT AS b, count(*)
                 FROM {table} WHERE ({where}) AND {value} IS NOT NULL GROUP BY b""")
    )
    return [counts.get(i, 0) for i in range(n)]


def edge_bins(table: str, value: str, edges: list, where: str = "true") -> list[int]:
    case = " ".join(f"WHEN {value} >= {e!r} THEN {i}" for i, e in reversed(list(enumerate(edges))))
    counts = dict(
        rows(
            f"SELECT least(CASE {case} ELSE 0 END, {len(edges) - 2}) AS b, count(*) FROM {table} WHERE {where} GROUP BY b"
        )
    )
    return [counts.get(i, 0) for i in range(len(edges) - 1)]


# The category of a quarantine reason, in SQL: without the quoted file name, up to the
# first ':', ';', ',', '(' or ' — ', digits as N, at most 60 characters.
REASON_SQL = r"""rtrim(substr(regexp_replace(trim(regexp_extract(
    regexp_replace(reason, '^''[^'']*'': ', ''), '^(.*?)(?:[:;,(]| — |$)', 1)), '\d+', 'N', 'g'), 1, 60))"""


def test_totals(case: DataCase, fig: F.Figures) -> None:
    files, arts = source(case, "files"), source(case, "articles")
    t = fig.totals
    assert t["files"] == one(f"SELECT count(*) FROM {files}")
    assert t["files_processed"] == one(f"SELECT count(*) FROM {files} WHERE status = 'processed'")
    assert t["files_quarantined"] == one(f"SELECT count(*) FROM {files} WHERE status = 'quarantined'")
    assert t["bytes"] == one(f"SELECT sum(n_bytes) FROM {files}")
    assert t["occurrences"] == one(f"SELECT count(*) FROM {source(case, 'occurrences')}")
    assert t["articles"] == one(f"SELECT count(*) FROM {arts}")
    assert t["articles_with_untranslated"] == one(f"SELECT count(*) FROM {arts} WHERE untranslated_ratio > 0")
    assert close(t["untranslated_share"], one(f"SELECT sum(untranslated_ratio * n_chars) / sum(n_chars) FROM {arts}"))
    spans = source(case, "spans")
    assert (t["spans"], t["untranslated_chars"]) == rows(f"SELECT count(*), sum(char_end - char_start) FROM {spans}")[0]
    links, clusters = rows(f"SELECT count(*), count(DISTINCT duplicate_of) FROM {source(case, 'duplicates')}")[0]
    assert (t["near_duplicate_links"], t["near_duplicate_clusters"]) == (links, clusters)


def test_quarantined_files_by_reason(case: DataCase, fig: F.Figures) -> None:
    files = source(case, "files")
    want = rows(f"""SELECT {REASON_SQL} AS r, count(*) AS n FROM {files} WHERE status = 'quarantined'
                    GROUP BY r ORDER BY n DESC, r""")
    assert [(r["reason"], r["files"]) for r in fig.quarantine_total] == want
    last = case.records[-1]
    want = rows(
        f"""SELECT {REASON_SQL} AS r, count(*) AS n FROM {files} WHERE status = 'quarantined' AND run_id = ?
            GROUP BY r ORDER BY n DESC, r""",
        last.run_id,
    )
    assert [(r["reason"], r["files"]) for r in fig.quarantine_run] == want
    if case.name == "corpus":  # every kind of bad file shows, in words
        assert {r["reason"] for r in fig.quarantine_total} == {
            "the file is empty",
            "binary data",
            "no body",
            "the file holds only whitespace",
        }


def test_articles_per_month_and_the_untranslated_share(case: DataCase, fig: F.Figures) -> None:
    arts = source(case, "articles")
    want = rows(f"""SELECT year, month, count(*), sum(n_chars), sum(untranslated_ratio * n_chars),
                           count(*) FILTER (untranslated_ratio > 0)
                    FROM {arts} WHERE year <> 'unknown' GROUP BY year, month ORDER BY year, month""")
    got = [
        (r["year"], r["month"], r["articles"], r["chars"], r["untranslated_chars"], r["with_untranslated"])
        for r in fig.per_month
    ]
    assert [g[:4] + g[5:] for g in got] == [w[:4] + w[5:] for w in want]
    assert all(close(g[4], w[4]) for g, w in zip(got, want, strict=True))
    undated, undated_month_known = rows(
        f"SELECT count(*), count(*) FILTER (month <> 'unknown') FROM {arts} WHERE year = 'unknown'"
    )[0]
    assert fig.unknown_month["articles"] == undated > 0 and undated_month_known == 0
    assert [b["n"] for b in fig.ratio_hist] == edge_bins(
        arts, "untranslated_ratio", F.RATIO_EDGES, "untranslated_ratio > 0"
    )
    assert fig.ratio_zero == one(f"SELECT count(*) FROM {arts} WHERE untranslated_ratio = 0")


def test_spans_by_language_length_and_confidence(case: DataCase, fig: F.Figures) -> None:
    spans = source(case, "spans")
    want = rows(
        f"SELECT lang, count(*) AS n, sum(char_end - char_start) FROM {spans} GROUP BY lang ORDER BY n DESC, lang"
    )
    assert [(r["lang"], r["spans"], r["chars"]) for r in fig.spans_by_lang] == want
    assert [b["n"] for b in fig.span_length_hist] == fixed_bins(spans, "(char_end - char_start)", *F.SPAN_LENGTH_BINS)
    assert [b["n"] for b in fig.confidence_hist] == fixed_bins(spans, "confidence", *F.CONFIDENCE_BINS)


def test_the_files_with_most_untranslated_text_and_their_spans(case: DataCase, fig: F.Figures) -> None:
    spans, files = source(case, "spans"), source(case, "files")
    want = rows(f"""SELECT source_file, count(*), sum(char_end - char_start) AS c, string_agg(DISTINCT lang, ', ' ORDER BY lang)
                    FROM {spans} GROUP BY source_file ORDER BY c DESC, source_file LIMIT {F.TOP_FILES}""")
    assert [(f["source_file"], f["spans"], f["untranslated_chars"], f["langs"]) for f in fig.top_files] == want
    assert fig.top_files, "the test data has untranslated spans"
    for f in fig.top_files:
        first = rows(
            f"SELECT char_start, text, pinyin, lang, gloss FROM {spans} WHERE source_file = ? "
            f"ORDER BY char_start LIMIT {F.SAMPLE_SPANS}",
            f["source_file"],
        )
        assert [(s["char_start"], s["text"], s["pinyin"], s["lang"], s["gloss"]) for s in f["samples"]] == first
        assert f["n_bytes"] == one(f"SELECT n_bytes FROM {files} WHERE source_file = ?", f["source_file"])
    assert fig.has_gloss is True


def test_near_duplicate_clusters_and_similarity(case: DataCase, fig: F.Figures) -> None:
    dups = source(case, "duplicates")
    cap = F.CLUSTER_CAP
    sizes = dict(
        rows(f"""SELECT least(n + 1, {cap}) AS s, count(*) FROM
                 (SELECT duplicate_of, count(*) AS n FROM {dups} GROUP BY duplicate_of) GROUP BY s""")
    )
    assert [(r["size"], r["n"]) for r in fig.cluster_sizes] == [(s, sizes.get(s, 0)) for s in range(2, cap + 1)]
    assert [b["n"] for b in fig.similarity_hist] == fixed_bins(dups, "similarity", *F.SIMILARITY_BINS)
    if case.name == "corpus":
        assert fig.totals["near_duplicate_links"] > 0


def test_top_people_places_organisations_and_keywords(case: DataCase, fig: F.Figures) -> None:
    arts = source(case, "articles")
    for column in F.ENTITY_COLUMNS:
        want = rows(f"""SELECT v, count(*) AS n FROM (SELECT unnest(list_distinct({column})) AS v FROM {arts})
                        WHERE v IS NOT NULL GROUP BY v ORDER BY n DESC, v LIMIT {F.TOP_VALUES}""")
        assert [(e["value"], e["articles"]) for e in fig.entities[column]] == want, column
        assert want, f"the test data names some {column}"


def test_article_length_and_paragraphs(case: DataCase, fig: F.Figures) -> None:
    arts = source(case, "articles")
    edges = F.LENGTH_EDGES
    assert [(b["lo"], b["hi"]) for b in fig.length_hist] == list(zip(edges, edges[1:], strict=False))
    assert [b["n"] for b in fig.length_hist] == edge_bins(arts, "n_chars", edges)
    cap = F.PARAGRAPHS_CAP
    counts = dict(rows(f"SELECT least(greatest(n_paragraphs, 0), {cap}) AS p, count(*) FROM {arts} GROUP BY p"))
    assert [(r["paragraphs"], r["n"]) for r in fig.paragraphs] == [(p, counts.get(p, 0)) for p in range(cap + 1)]


def test_this_run_and_the_last_runs_from_their_records(case: DataCase, fig: F.Figures) -> None:
    records = f"read_json_auto('{case.data}/_reports/runs/*.json')"
    want = rows(
        f"SELECT run_id::VARCHAR, bytes_seen, seconds_to_commit, files_seen FROM {records} ORDER BY started_at, run_id"
    )
    assert [r.run_id for r in fig.history] == [w[0] for w in want]
    assert fig.run is not None and fig.run.run_id == want[-1][0]
    _, bytes_seen, seconds, files_seen = want[-1]
    assert close(fig.run.mb_per_s, bytes_seen / (1 << 20) / seconds) and close(
        fig.run.files_per_s, files_seen / seconds
    )
    # the last run saw every file: its record agrees with the manifest it wrote
    files = source(case, "files")
    assert bytes_seen == one(f"SELECT sum(n_bytes) FROM {files}")
    processed, quarantined = rows(
        f"""SELECT count(*) FILTER (status = 'processed'), count(*) FILTER (status = 'quarantined')
            FROM {files} WHERE run_id = ?""",
        fig.run.run_id,
    )[0]
    assert (fig.run.files_processed, fig.run.files_quarantined) == (processed, quarantined)
    assert fig.run.files_unchanged == files_seen - processed - quarantined


def test_an_object_store_data_folder_gives_the_same_figures(case: DataCase, fig: F.Figures, memory_uri: str) -> None:
    memory = fsspec.filesystem("memory")
    target = memory_uri.removeprefix("memory://")
    for path in sorted(Path(case.data).rglob("*")):
        if path.is_file():
            memory.pipe(f"/{target}/{path.relative_to(case.data).as_posix()}", path.read_bytes())
    remote = F.compute(memory_uri, None, history.read_records(memory_uri), history_runs=RUNS)
    assert {**remote.__dict__, "data_dir": "", "generated_at": "", "seconds": 0} == {
        **fig.__dict__,
        "data_dir": "",
        "generated_at": "",
        "seconds": 0,
    }


def test_a_data_folder_without_datasets_gives_zeros(tmp_path: Path) -> None:
    empty = F.compute(tmp_path, None, [], history_runs=RUNS)
    assert empty.totals["files"] == empty.totals["articles"] == empty.totals["spans"] == 0
    assert empty.run is None and empty.history == [] and empty.per_month == [] and empty.top_files == []
