"""Steps 2–5 for one batch of files, as rows: segment + tag + enrich inputs -> polars frames.

`page_rows` turns one loaded, segmented page into plain column lists (no Prefect, no
I/O); `BatchRows.take_frames` turns a batch's lists into one frame per dataset (and drops
the lists); `article_frames` adds the article enrichment and the MinHash signatures. The
flow runs both once per batch of files (what one worker process holds at once), then
deduplicates and writes globally.
"""

from __future__ import annotations

import time
import unicodedata
from bisect import bisect_left
from collections import defaultdict
from dataclasses import dataclass, field
from functools import lru_cache

import polars as pl

from tasks.steps import dedupe, enrich, langtag
from tasks.steps.load import LoadedFile
from tasks.schema import (
    ARTICLES,
    KIND_MAIN,
    KIND_RELATED,
    LANG_EN,
    LEVEL_PARAGRAPH,
    LEVEL_SENTENCE,
    MINHASH_INDEX,
    OCCURRENCES,
    SEGMENTS,
    SPANS,
    C,
    DatasetSpec,
)
from tasks.steps.segment import Article, Paragraph, article_body


@dataclass
class Columns:
    """Column-oriented row buffer for one dataset (cheaper than a dict per row)."""

    spec: DatasetSpec
    data: dict[str, list] = field(default_factory=lambda: defaultdict(list))
    # schema field names, read once: iterating a pyarrow schema builds Field objects each time
    names: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        self.names = tuple(f.name for f in self.spec.schema)

    def add_rows(self, rows: list[tuple]) -> None:
        """Append rows given as tuples in schema order (one page's worth): a tuple per row
        is cheaper than a kwargs dict per row, and the tuples die with the page, so the
        batch-long buffers hold only column lists (a batch of long-lived row tuples made
        frame() ~3x slower, from the garbage collector walking them)."""
        if rows:
            data = self.data
            for name, column in zip(self.names, zip(*rows), strict=True):
                data[name].extend(column)

    def frame(self) -> pl.DataFrame:
        if not self.data:
            return pl.from_arrow(self.spec.schema.empty_table())  # type: ignore[return-value]
        return pl.from_arrow(pl.DataFrame({n: self.data[n] for n in self.names}).to_arrow().cast(self.spec.schema))  # type: ignore[return-value]


# Article-level inputs of the enrich step (not a public dataset).
CANDIDATE_COLUMNS = (C.article_id, C.kind, enrich.TITLE_LINE, enrich.RELEASE_TIME_RAW, C.body, C.n_paragraphs, enrich.UNTRANSLATED_CHARS)


@dataclass
class BatchRows:
    occurrences: Columns = field(default_factory=lambda: Columns(OCCURRENCES))
    segments: Columns = field(default_factory=lambda: Columns(SEGMENTS))
    spans: Columns = field(default_factory=lambda: Columns(SPANS))
    candidates: dict[str, list] = field(default_factory=lambda: defaultdict(list))

    def take_frames(self) -> RowFrames:
        """The buffered rows as frames; the buffers are emptied (the lists hold every
        segment's text as a Python string: freeing them before enrichment lowers a worker's
        peak, as polars cannot reuse memory Python freed)."""
        candidates = pl.DataFrame(dict(self.candidates)) if self.candidates else pl.DataFrame({n: [] for n in CANDIDATE_COLUMNS})
        frames = RowFrames(self.occurrences.frame(), self.segments.frame(), self.spans.frame(), candidates)
        for columns in (self.occurrences, self.segments, self.spans):
            columns.data.clear()
        self.candidates.clear()
        return frames


@dataclass(frozen=True)
class RowFrames:
    """A batch's rows as frames, before enrichment (candidates: CANDIDATE_COLUMNS)."""

    occurrences: pl.DataFrame
    segments: pl.DataFrame
    spans: pl.DataFrame
    candidates: pl.DataFrame


def _segment_row(text: str, aid: str, source: str, level: str, p_index: int, s_index: int | None, start: int, end: int, spans: list) -> tuple:
    lang = langtag.paragraph_language(text, spans, start, end)
    return (aid, source, level, p_index, s_index, text[start:end], lang, start, end)


def _english_paragraph_rows(out: list[tuple], text: str, aid: str, source: str, p_index: int, paragraph: Paragraph) -> None:
    """Rows of a paragraph without spans: every segment is LANG_EN (what paragraph_language
    says for no spans), so the ~90 % of paragraphs that are plain English skip it."""
    a, b = paragraph.char_start, paragraph.char_end
    out.append((aid, source, LEVEL_PARAGRAPH, p_index, None, text[a:b], LANG_EN, a, b))
    out += [(aid, source, LEVEL_SENTENCE, p_index, i, text[s:e], LANG_EN, s, e) for i, (s, e) in enumerate(paragraph.sentences)]


def _tagged_paragraph_rows(
    out: list[tuple], text: str, aid: str, source: str, p_index: int, paragraph: Paragraph, spans: list[langtag.TaggedSpan]
) -> None:
    """Rows of a paragraph with spans: each segment's language from the spans inside it."""
    out.append(_segment_row(text, aid, source, LEVEL_PARAGRAPH, p_index, None, paragraph.char_start, paragraph.char_end, spans))
    for s_index, (start, end) in enumerate(paragraph.sentences):
        inside = [s for s in spans if s.char_start < end and s.char_end > start]
        out.append(_segment_row(text, aid, source, LEVEL_SENTENCE, p_index, s_index, start, end, inside))


def _span_rows(out: list[tuple], aid: str, source: str, p_index: int, spans: list[langtag.TaggedSpan]) -> None:
    out += [
        (langtag.span_id(source, sp.char_start, sp.char_end), aid, source, p_index, sp.char_start, sp.char_end, sp.text, sp.lang,
         sp.confidence, enrich.span_pinyin(sp.text))
        for sp in spans
    ]


def _paragraph_spans(text: str, page_spans: list[tuple[int, int]], starts: list[int], paragraph: Paragraph) -> list[langtag.TaggedSpan]:
    """The page's spans (sorted, with their start offsets) that start inside paragraph, tagged."""
    lo = bisect_left(starts, paragraph.char_start)
    hi = bisect_left(starts, paragraph.char_end, lo)
    return langtag.tag_ranges(text, page_spans[lo:hi]) if lo < hi else []


@lru_cache(maxsize=8192)
def _related_article_id(title: str, body: str) -> str:
    """dedupe.article_id, cached: related articles recur verbatim across pages (~30 % of the
    slots), main articles hardly ever (not cached: hashing their long bodies buys nothing)."""
    return dedupe.article_id(title, body)


def page_rows(loaded: LoadedFile, articles: list[Article], rows: BatchRows) -> None:
    """Append one page's rows (occurrences, segments, spans, article candidates) to `rows`."""
    text, source = loaded.text, loaded.source_file
    occurrences: list[tuple] = []
    segments: list[tuple] = []
    span_rows: list[tuple] = []
    # One span search per page instead of one per paragraph (most pages have few spans, many
    # none). Same spans: a span never crosses a line break and a paragraph is whole lines
    # with their blanks trimmed, so the page's spans that start inside a paragraph are exactly
    # tag_spans(text, paragraph.char_start, paragraph.char_end) (tests/test_langtag.py).
    page_spans = langtag.find_untranslated_spans(text)
    span_starts = [s for s, _ in page_spans]
    for article in articles:
        body = article_body(text, article)
        title, _tags = enrich.split_title_and_tags(article.title_line)
        aid = _related_article_id(title, body) if article.kind == KIND_RELATED else dedupe.article_id(title, body)
        occurrences.append((aid, source, loaded.sha256, article.ordinal, article.kind, article.char_start, article.char_end))
        untranslated = 0
        for p_index, paragraph in enumerate(article.paragraphs):
            spans = _paragraph_spans(text, page_spans, span_starts, paragraph) if page_spans else []
            if not spans:
                _english_paragraph_rows(segments, text, aid, source, p_index, paragraph)
                continue
            untranslated += sum(s.char_end - s.char_start for s in spans)
            _tagged_paragraph_rows(segments, text, aid, source, p_index, paragraph, spans)
            _span_rows(span_rows, aid, source, p_index, spans)
        for name, value in zip(
            CANDIDATE_COLUMNS,
            (aid, article.kind, article.title_line, article.release_time_raw, body, len(article.paragraphs), untranslated),
            strict=True,
        ):
            rows.candidates[name].append(value)
    rows.occurrences.add_rows(occurrences)
    rows.segments.add_rows(segments)
    rows.spans.add_rows(span_rows)


@dataclass(frozen=True)
class BatchFrames:
    """Everything one batch contributes, before global deduplication."""

    articles: pl.DataFrame  # schema ARTICLES, one row per distinct article_id in the batch
    occurrences: pl.DataFrame
    segments: pl.DataFrame
    spans: pl.DataFrame
    signatures: pl.DataFrame  # schema MINHASH_INDEX


def unique_articles(candidates: pl.DataFrame) -> pl.DataFrame:
    """Exact dedup inside a batch: one row per article_id. A `main` occurrence wins over
    `related` (it carries the date), then the first occurrence in file order."""
    return (
        candidates.with_row_index("_order")
        .sort([pl.col(C.kind) != KIND_MAIN, "_order"])
        .unique(subset=[C.article_id], keep="first", maintain_order=True)
        .drop("_order")
    )


def signature_text_expr() -> pl.Expr:
    """Title and body as one string (before normalization), as near-duplicate detection
    compares them. A new string: selecting it from a filtered scan holds only the kept rows'
    text, not the scanned buffers their string views would point into."""
    return pl.concat_str([pl.col(C.title), pl.col(C.body)], separator="\n\n")


def signature_texts(articles: pl.DataFrame) -> list[str]:
    """What near-duplicate detection compares: the normalized title and body."""
    return [dedupe.normalize_text(text) for text in articles.select(signature_text_expr()).to_series()]


def _signature_words_texts(articles: pl.DataFrame) -> list[str]:
    """Texts with exactly the \\w+ tokens of `signature_texts` (what MinHash reads), minus the
    whitespace work: normalize_text only changes whitespace (never a \\w char), drops BOMs
    and applies NFC; MinHash applies NFC again and ignores whitespace. Measured 0.9 s of a
    12 s 8 MB batch for the full normalization."""
    out = []
    for title, body in articles.select(C.title, C.body).iter_rows():
        text = f"{title}\n\n{body}"
        if not text.isascii():
            text = unicodedata.normalize("NFC", text)
            if "\ufeff" in text:
                text = text.replace("\ufeff", "")
        out.append(text)
    return out


def article_frames(frames: RowFrames, timings: dict[str, float] | None = None) -> BatchFrames:
    """Enrich the batch's unique articles and sign them; `timings` (step -> seconds) is added to."""
    timings = timings if timings is not None else {}
    started = time.perf_counter()
    unique = unique_articles(frames.candidates)
    enriched = enrich.enrich_articles(unique)
    articles = (
        unique.select(C.article_id, C.kind, C.body, C.n_paragraphs)
        .join(enriched, on=C.article_id, how="left", maintain_order="left")
        .select([f.name for f in ARTICLES.schema])
    )
    articles = pl.from_arrow(articles.to_arrow().cast(ARTICLES.schema))
    signed = time.perf_counter()
    timings["enrich"] = timings.get("enrich", 0.0) + signed - started
    signatures = dedupe.signatures_frame(
        articles.get_column(C.article_id).to_list(),
        articles.get_column(C.published_at).to_list(),
        _signature_words_texts(articles),
    )
    timings["minhash"] = timings.get("minhash", 0.0) + time.perf_counter() - signed
    return BatchFrames(
        articles=articles,  # type: ignore[arg-type]
        occurrences=frames.occurrences,
        segments=frames.segments,
        spans=frames.spans,
        signatures=pl.from_arrow(signatures.to_arrow().cast(MINHASH_INDEX.schema)),  # type: ignore[arg-type]
    )
