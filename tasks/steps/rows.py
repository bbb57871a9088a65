"""The rows step: a loaded, segmented and tagged page -> rows of every dataset.

`BatchRows.add_page` appends one page's rows as plain column lists (no Prefect, no I/O);
`BatchRows.take_frames` turns a batch's lists into one frame per dataset and drops the
lists. Articles come out as candidates, one row per occurrence: the enrich step reads
them after the batch keeps one row per article (tasks/steps/dedupe.py::one_per_article).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from functools import lru_cache

import polars as pl
import pyarrow as pa

from tasks.schema import (
    KIND_RELATED,
    LANG_EN,
    LEVEL_PARAGRAPH,
    LEVEL_SENTENCE,
    OCCURRENCES,
    SEGMENTS,
    SPAN_ENRICHMENT_COLUMNS,
    SPANS,
    C,
    conform,
    empty_frame,
)
from tasks.steps.identity import article_id, span_id
from tasks.steps.langtag import PageTags, ParagraphTags
from tasks.steps.load import LoadedFile
from tasks.steps.segment import Article, Paragraph

# The spans the rows step builds: SPANS without the columns the enrich step adds.
SPAN_ROWS_SCHEMA = pa.schema([f for f in SPANS.schema if f.name not in SPAN_ENRICHMENT_COLUMNS])

# Article rows before enrichment, one per occurrence (not a public dataset).
CANDIDATE_SCHEMA = pa.schema(
    [
        pa.field(C.article_id, pa.string(), nullable=False),
        pa.field(C.kind, pa.string(), nullable=False),
        pa.field(C.title, pa.string(), nullable=False),
        pa.field(C.tags, pa.list_(pa.string()), nullable=False),
        pa.field(C.release_time_raw, pa.string()),
        pa.field(C.body, pa.string(), nullable=False),
        pa.field(C.n_paragraphs, pa.int64(), nullable=False),
        pa.field(C.untranslated_chars, pa.int64(), nullable=False),
    ]
)


@dataclass
class Columns:
    """Column-oriented row buffer for one dataset (cheaper than a dict per row)."""

    schema: pa.Schema
    data: dict[str, list] = field(default_factory=lambda: defaultdict(list))
    # schema field names, read once: iterating a pyarrow schema builds Field objects each time
    names: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        self.names = tuple(f.name for f in self.schema)

    def add_rows(self, rows: list[tuple]) -> None:
        """Append rows given as tuples in schema order (one page's worth): a tuple per row
        is cheaper than a kwargs dict per row, and the tuples die with the page, so the
        batch-long buffers hold only column lists (a batch of long-lived row tuples made
        frame() ~3x slower, from the garbage collector walking them)."""
        if rows:
            data = self.data
            for name, column in zip(self.names, zip(*rows, strict=True), strict=True):
                data[name].extend(column)

    def frame(self) -> pl.DataFrame:
        if not self.data:
            return empty_frame(self.schema)
        return conform(pl.DataFrame({n: self.data[n] for n in self.names}), self.schema)


@dataclass(frozen=True)
class RowFrames:
    """A batch's rows as frames: occurrences and segments as published, spans without their
    enrichment (SPAN_ROWS_SCHEMA), articles as candidates (CANDIDATE_SCHEMA)."""

    occurrences: pl.DataFrame
    segments: pl.DataFrame
    spans: pl.DataFrame
    candidates: pl.DataFrame


@dataclass
class BatchRows:
    occurrences: Columns = field(default_factory=lambda: Columns(OCCURRENCES.schema))
    segments: Columns = field(default_factory=lambda: Columns(SEGMENTS.schema))
    spans: Columns = field(default_factory=lambda: Columns(SPAN_ROWS_SCHEMA))
    candidates: Columns = field(default_factory=lambda: Columns(CANDIDATE_SCHEMA))

    def add_page(self, loaded: LoadedFile, articles: list[Article], tags: PageTags) -> None:
        """Append one page's rows (occurrences, segments, spans, article candidates)."""
        text, source = loaded.text, loaded.source_file
        occurrences: list[tuple] = []
        segments: list[tuple] = []
        spans: list[tuple] = []
        candidates: list[tuple] = []
        for a_index, article in enumerate(articles):
            aid = (
                _related_article_id(article.title, article.body)
                if article.kind == KIND_RELATED
                else article_id(article.title, article.body)
            )
            occurrences.append(
                (aid, source, loaded.sha256, article.ordinal, article.kind, article.char_start, article.char_end)
            )
            untranslated = 0
            for p_index, paragraph in enumerate(article.paragraphs):
                paragraph_tags = tags.get((a_index, p_index)) if tags else None
                if paragraph_tags is None:
                    _english_paragraph_rows(segments, text, aid, source, p_index, paragraph)
                    continue
                untranslated += sum(s.char_end - s.char_start for s in paragraph_tags.spans)
                _tagged_paragraph_rows(segments, text, aid, source, p_index, paragraph, paragraph_tags)
                spans += [
                    (
                        span_id(source, s.char_start, s.char_end),
                        aid,
                        source,
                        p_index,
                        s.char_start,
                        s.char_end,
                        s.text,
                        s.lang,
                        s.confidence,
                    )
                    for s in paragraph_tags.spans
                ]
            candidates.append(
                (
                    aid,
                    article.kind,
                    article.title,
                    list(article.tags),
                    article.release_time_raw,
                    article.body,
                    len(article.paragraphs),
                    untranslated,
                )
            )
        self.occurrences.add_rows(occurrences)
        self.segments.add_rows(segments)
        self.spans.add_rows(spans)
        self.candidates.add_rows(candidates)

    def take_frames(self) -> RowFrames:
        """The buffered rows as frames; the buffers are emptied (the lists hold every
        segment's text as a Python string: freeing them before enrichment lowers a worker's
        peak, as polars cannot reuse memory Python freed)."""
        frames = RowFrames(self.occurrences.frame(), self.segments.frame(), self.spans.frame(), self.candidates.frame())
        for columns in (self.occurrences, self.segments, self.spans, self.candidates):
            columns.data.clear()
        return frames


def _english_paragraph_rows(
    out: list[tuple], text: str, aid: str, source: str, p_index: int, paragraph: Paragraph
) -> None:
    """Rows of a paragraph without spans: it and every sentence are LANG_EN (the ~90 % of
    paragraphs that are plain English take this path)."""
    a, b = paragraph.char_start, paragraph.char_end
    out.append((aid, source, LEVEL_PARAGRAPH, p_index, None, text[a:b], LANG_EN, a, b))
    out += [
        (aid, source, LEVEL_SENTENCE, p_index, i, text[s:e], LANG_EN, s, e)
        for i, (s, e) in enumerate(paragraph.sentences)
    ]


def _tagged_paragraph_rows(
    out: list[tuple], text: str, aid: str, source: str, p_index: int, paragraph: Paragraph, tags: ParagraphTags
) -> None:
    """Rows of a paragraph with spans: each segment's language as the tag step gave it."""
    a, b = paragraph.char_start, paragraph.char_end
    out.append((aid, source, LEVEL_PARAGRAPH, p_index, None, text[a:b], tags.lang, a, b))
    out += [
        (aid, source, LEVEL_SENTENCE, p_index, i, text[s:e], lang, s, e)
        for i, ((s, e), lang) in enumerate(zip(paragraph.sentences, tags.sentence_langs, strict=True))
    ]


@lru_cache(maxsize=8192)
def _related_article_id(title: str, body: str) -> str:
    """article_id, cached: related articles recur verbatim across pages (~30 % of the
    slots), main articles hardly ever (not cached: hashing their long bodies buys nothing)."""
    return article_id(title, body)
