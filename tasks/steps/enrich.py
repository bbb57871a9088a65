"""The enrich step: columns derived from an article's rows, and from a span's text.

`enrich_articles` (a batch's articles, one row each) and `enrich_spans` (a batch's spans)
are the step's entry points. Rules (see the function docstrings for details):
- Release time: `Mon DD, YYYY HH:MM [AM|PM]`; HH:MM is read as a 24-hour clock and the
  AM/PM marker is ignored (the site prints 24-hour times and appends "PM" blindly: every
  seed says PM, including "17:21 PM" and "12:01 PM"). Local time in Asia/Shanghai.
- Counts: n_chars = characters of the body; n_words = Latin/other-script words of the body
  plus one word per Han/kana character (CJK text has no spaces).
- Entities (tasks/steps/entities.py) and keywords (tasks/steps/keywords.py) are searched in
  title + body.
- Spans: pinyin with tone marks; an English gloss of Chinese spans (tasks/steps/gloss.py)
  with the dictionary release it was made with.
"""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache

import polars as pl

from tasks.schema import ARTICLES, SPANS, TIMEZONE, C, conform, empty_frame
from tasks.steps.entities import blanks_as_spaces, organizations_expr, people_expr, places_expr, scan
from tasks.steps.gloss import gloss_source, gloss_span
from tasks.steps.keywords import keywords_frame, word_count_expr

_TEXT = "_text"  # internal: title + body, the text entities and keywords are searched in

# ---------------------------------------------------------------- release time

_TIME_FORMATS = (
    "%B %d, %Y %H:%M",
    "%B %d, %Y %H:%M:%S",
    "%B %d %Y %H:%M",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%d %H:%M:%S",
    "%B %d, %Y",
    "%Y-%m-%d",
)


def _release_time_expr(raw: pl.Expr) -> pl.Expr:
    """Raw "May 17, 2024 17:21 PM" -> Datetime(us, Asia/Shanghai); null when unparseable."""
    text = (
        raw.cast(pl.String)
        .str.replace_all(r"[\s\u00a0\u202f\u3000]+", " ")
        .str.replace(r"(?i)^\s*release\s+time\s*[:：]\s*", "")
        .str.replace(r"(?i)\s*[ap]\.?m\.?\s*$", "")  # AM/PM is noise: the clock is 24-hour
        .str.replace(r"(\d)(?:st|nd|rd|th)\b", "$1")
        .str.strip_chars()
    )
    parsed = pl.coalesce([text.str.strptime(pl.Datetime("us"), f, strict=False) for f in _TIME_FORMATS])
    return parsed.dt.replace_time_zone(TIMEZONE, ambiguous="null", non_existent="null")


def parse_release_time(raw: str | None) -> datetime | None:
    """The value after "Release time:" as an aware datetime in Asia/Shanghai, else None.

    "May 17, 2024 17:21 PM" -> 2024-05-17 17:21+08:00. HH:MM is a 24-hour clock and any
    AM/PM suffix is ignored ("12:01 PM" -> 12:01, "09:30 PM" -> 09:30). Also accepted: full
    month names, seconds, ISO dates, a date alone (midnight)."""
    if not isinstance(raw, str) or not raw.strip():
        return None
    try:
        return pl.select(_release_time_expr(pl.lit(raw, dtype=pl.String))).item()
    except Exception:  # noqa: BLE001 — contract: never raise on bad input
        return None


# ---------------------------------------------------------------- pinyin


@lru_cache(maxsize=65536)  # spans repeat (quotes, names): ~0.4 s of a 12 s 8 MB batch uncached
def span_pinyin(span_text: str) -> str:
    """Pinyin with tone marks, one syllable per Han character, separated by spaces; runs of
    other characters are kept as they are; whitespace collapsed. 陈吉宁 -> "chén jí níng"."""
    # Imported here: its phrase dictionary is 55 MB of Python objects, needed only where
    # spans are tagged (the batch workers), not in the flow process that runs them.
    from pypinyin import Style, lazy_pinyin

    try:
        return " ".join(" ".join(lazy_pinyin(span_text or "", style=Style.TONE)).split())
    except Exception:  # noqa: BLE001
        return ""


# ---------------------------------------------------------------- the step

_ARTICLES_SCHEMA = empty_frame(ARTICLES.schema).schema
KEYWORDS_PER_ARTICLE = 10


def enrich_articles(articles: pl.DataFrame) -> pl.DataFrame:
    """A batch's articles, one row each (article_id, kind, title, tags, release_time_raw,
    body, n_paragraphs, untranslated_chars: tasks/steps/rows.py::CANDIDATE_SCHEMA) -> rows
    of the articles dataset (schema.ARTICLES; lists never null)."""
    if articles.height == 0:
        return pl.DataFrame(schema=_ARTICLES_SCHEMA)
    body = blanks_as_spaces(pl.col(C.body))  # NBSP & co. as spaces, for counting and matching
    n_chars = body.str.len_chars().cast(pl.Int64)
    with_text = articles.with_columns(pl.concat_str([pl.col(C.title), body], separator="\n\n").alias(_TEXT))
    out = scan(with_text, _TEXT).select(
        C.article_id,
        C.kind,
        C.title,
        C.tags,
        _release_time_expr(pl.col(C.release_time_raw)).alias(C.published_at),
        C.body,
        n_chars.alias(C.n_chars),
        word_count_expr(body).alias(C.n_words),
        C.n_paragraphs,
        pl.when(n_chars > 0).then(pl.col(C.untranslated_chars) / n_chars).otherwise(0.0).alias(C.untranslated_ratio),
        people_expr().alias(C.people),
        places_expr().alias(C.places),
        organizations_expr().alias(C.organizations),
        pl.col(_TEXT),
    )
    keywords = keywords_frame(pl.Series(range(out.height)), out[_TEXT], KEYWORDS_PER_ARTICLE, out[C.people])
    out = (
        out.with_row_index("_row")
        .join(
            keywords.rename({"id": "_row"}).with_columns(pl.col("_row").cast(pl.UInt32)),
            on="_row",
            how="left",
            maintain_order="left",
        )
        .drop("_row", _TEXT)
    )
    lists = [C.tags, C.people, C.places, C.organizations, C.keywords]
    out = out.with_columns(pl.col(c).fill_null(pl.lit([], dtype=pl.List(pl.String))) for c in lists).select(
        list(_ARTICLES_SCHEMA)
    )
    return conform(out, ARTICLES.schema)


def enrich_spans(spans: pl.DataFrame) -> pl.DataFrame:
    """A batch's spans (tasks/steps/rows.py::SPAN_ROWS_SCHEMA) -> rows of the spans dataset
    (schema.SPANS). Each distinct (text, lang) is enriched once: pinyin, and for Chinese
    spans a gloss and its source (both null for ja/ko). The gloss dictionary is loaded by
    the first batch with a Chinese span, in the worker process that runs it."""
    distinct = spans.select(C.text, C.lang).unique(maintain_order=True)
    texts, langs = distinct.get_column(C.text).to_list(), distinct.get_column(C.lang).to_list()
    glosses = [gloss_span(t, lg) for t, lg in zip(texts, langs, strict=True)]
    source = gloss_source() if any(g is not None for g in glosses) else None
    enriched = distinct.with_columns(
        pl.Series(C.pinyin, [span_pinyin(t) for t in texts], dtype=pl.String),
        pl.Series(C.gloss, glosses, dtype=pl.String),
        pl.Series(C.gloss_source, [None if g is None else source for g in glosses], dtype=pl.String),
    )
    out = spans.join(enriched, on=[C.text, C.lang], how="left", maintain_order="left", nulls_equal=True)
    out = out.select([f.name for f in SPANS.schema])
    return conform(out, SPANS.schema)
