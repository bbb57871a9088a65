"""Step 2 — segment: decoded page -> articles -> paragraphs -> sentences, with offsets.

The pages have a fixed shape (see README "Input format"):

    Title line                          <- main article title (may end in ` | tag | tag`)
    Release time:May 17, 2024 17:21 PM  <- optional
    body paragraphs, blank-line separated; the title recurs as a page header
    Related title                       <- each related article: its title printed twice
    Related title                          in a row, then a truncated snippet
    snippet paragraph
    ...

All offsets are character offsets into the text given to `segment_page`; nothing is
copied out of it except the short title/release strings, so rows can always be traced
back to the exact characters they came from.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tasks.schema import KIND_MAIN, KIND_RELATED

_RELEASE_TIME = re.compile(r"\s*release\s+time\s*[:：]\s*(?P<value>.*?)\s*$", re.IGNORECASE)
_WHITESPACE = re.compile(r"\s+")

# A sentence ends at . ? ! followed by whitespace, or at 。！？ (optionally followed by
# closing quotes/brackets) — Chinese needs no space after its full stops.
_SENTENCE_END = re.compile(r"[.?!]+[\"'”’)\]]*(?=\s)|[。！？]+[”’」』）)]*")
# Words that end in "." without ending a sentence.
_ABBREVIATIONS = frozenset(
    "mr mrs ms dr prof st no nos vs etc co ltd inc corp jr sr gov gen rep sen dept est fig approx "
    "jan feb mar apr jun jul aug sep sept oct nov dec e.g i.e u.s u.k u.n p.m a.m".split()
)
_LAST_WORD = re.compile(r"(\S+)$")


@dataclass(frozen=True, slots=True)
class Sentence:
    char_start: int
    char_end: int


@dataclass(frozen=True, slots=True)
class Paragraph:
    char_start: int
    char_end: int
    sentences: tuple[Sentence, ...]


@dataclass(frozen=True, slots=True)
class Article:
    kind: str  # KIND_MAIN | KIND_RELATED
    ordinal: int  # position in the file, 0-based
    title_line: str  # raw title line (tags not yet split; see tasks.enrich)
    release_time_raw: str | None  # value after "Release time:", unparsed
    char_start: int  # first title line start
    char_end: int  # end of the last line that belongs to the article
    paragraphs: tuple[Paragraph, ...]
    header_lines: tuple[tuple[int, int], ...]  # title / release / recurring header lines, dropped from the body


@dataclass(frozen=True, slots=True)
class _Line:
    start: int  # offset of the first non-whitespace character
    end: int  # offset after the last non-whitespace character
    key: str  # whitespace-normalised content, '' for blank lines


def _lines(text: str) -> list[_Line]:
    lines: list[_Line] = []
    pos = 0
    for raw in text.splitlines(keepends=True):
        stripped = raw.strip()
        if stripped:
            lead = len(raw) - len(raw.lstrip())
            start = pos + lead
            end = start + len(stripped)
            # " ".join(split()) == _WHITESPACE.sub(" ", ...) here: both use str.isspace's table
            lines.append(_Line(start, end, " ".join(stripped.split())))
        else:
            lines.append(_Line(pos, pos, ""))
        pos += len(raw)
    return lines


def _is_title_pair(lines: list[_Line], i: int) -> bool:
    return i + 1 < len(lines) and bool(lines[i].key) and lines[i].key == lines[i + 1].key


def split_sentences(text: str, start: int, end: int) -> tuple[Sentence, ...]:
    """Sentences of text[start:end] with absolute offsets (whitespace trimmed).

    Splits after `.?!` + whitespace and after `。！？`; not after abbreviations
    (`U.S.`, `Co., Ltd.`, `No.`) nor inside numbers (`3.5` has no space after the dot),
    nor after a one- or two-digit list number (`1. The time ...`).
    """
    sentences: list[Sentence] = []
    cursor = start
    for match in _SENTENCE_END.finditer(text, start, end):
        cut = match.end()
        if match.group()[0] == ".":
            token = _last_word(text, cursor, match.start()).lower().strip("\"'“‘(")
            if token in _ABBREVIATIONS or (len(token) == 1 and token.isalpha()) or (token.isdigit() and len(token) <= 2):
                continue
        _append_trimmed(text, cursor, cut, sentences)
        cursor = cut
    _append_trimmed(text, cursor, end, sentences)
    return tuple(sentences)


def _last_word(text: str, lo: int, hi: int) -> str:
    """What `_LAST_WORD.search(text, lo, hi)` finds, without rescanning text[lo:hi] at every
    position: the run of non-blanks ending at hi -- or before a newline at hi - 1, where `$`
    also matches ("" when there is none). Same isspace table as \\S."""
    end = hi - 1 if hi > lo and text[hi - 1] == "\n" else hi
    i = end
    while i > lo and not text[i - 1].isspace():
        i -= 1
    return text[i:end]


def _append_trimmed(text: str, start: int, end: int, out: list[Sentence]) -> None:
    piece = text[start:end]
    stripped = piece.strip()
    if stripped:
        s = start + (len(piece) - len(piece.lstrip()))
        out.append(Sentence(s, s + len(stripped)))


def _paragraphs(text: str, lines: list[_Line], lo: int, hi: int, drop: set[int]) -> tuple[Paragraph, ...]:
    """Group consecutive kept non-blank lines of lines[lo:hi] into paragraphs; dropped lines separate too."""
    paragraphs: list[Paragraph] = []
    run: list[_Line] = []
    for i in range(lo, hi):
        line = lines[i]
        if line.key and i not in drop:
            run.append(line)
            continue
        if run:
            paragraphs.append(Paragraph(run[0].start, run[-1].end, split_sentences(text, run[0].start, run[-1].end)))
            run = []
    if run:
        paragraphs.append(Paragraph(run[0].start, run[-1].end, split_sentences(text, run[0].start, run[-1].end)))
    return tuple(paragraphs)


def _related_start(lines: list[_Line], first: int) -> int:
    for i in range(first, len(lines)):
        if _is_title_pair(lines, i):
            return i
    return len(lines)


def _main_article(text: str, lines: list[_Line], end_line: int) -> Article | None:
    nonblank = [i for i in range(end_line) if lines[i].key]
    if not nonblank:
        return None
    title_i = nonblank[0]
    title = lines[title_i]
    header = {title_i}
    release_raw = None
    if len(nonblank) > 1 and (m := _RELEASE_TIME.fullmatch(lines[nonblank[1]].key)):
        release_raw = m.group("value") or None
        header.add(nonblank[1])
    # The title recurs as a page separator inside the body (and once more at the end).
    header.update(i for i in nonblank if lines[i].key == title.key)
    paragraphs = _paragraphs(text, lines, title_i, end_line, header)
    return Article(
        kind=KIND_MAIN,
        ordinal=0,
        title_line=title.key,
        release_time_raw=release_raw,
        char_start=title.start,
        char_end=lines[nonblank[-1]].end,
        paragraphs=paragraphs,
        header_lines=tuple((lines[i].start, lines[i].end) for i in sorted(header)),
    )


def _related_articles(text: str, lines: list[_Line], first: int, ordinal: int) -> list[Article]:
    articles: list[Article] = []
    i = first
    while i < len(lines):
        if not _is_title_pair(lines, i):
            i += 1
            continue
        j = i + 2
        while j < len(lines) and not _is_title_pair(lines, j):
            j += 1
        paragraphs = _paragraphs(text, lines, i + 2, j, set())
        last = max([i + 1] + [k for k in range(i + 2, j) if lines[k].key])
        articles.append(
            Article(
                kind=KIND_RELATED,
                ordinal=ordinal,
                title_line=lines[i].key,
                release_time_raw=None,
                char_start=lines[i].start,
                char_end=lines[last].end,
                paragraphs=paragraphs,
                header_lines=((lines[i].start, lines[i].end), (lines[i + 1].start, lines[i + 1].end)),
            )
        )
        ordinal += 1
        i = j
    return articles


def segment_page(text: str) -> list[Article]:
    """Split one decoded page into its articles, in file order.

    Returns [] for a page with no non-blank line. A page that starts with a title pair
    has no main article (a bare related-articles block).
    """
    lines = _lines(text)
    first_nonblank = next((i for i, line in enumerate(lines) if line.key), None)
    if first_nonblank is None:
        return []
    if _is_title_pair(lines, first_nonblank):
        return _related_articles(text, lines, first_nonblank, ordinal=0)
    related_at = _related_start(lines, first_nonblank + 1)
    main = _main_article(text, lines, related_at)
    articles: list[Article] = [main] if main else []
    articles += _related_articles(text, lines, related_at, ordinal=len(articles))
    return articles


def article_body(text: str, article: Article) -> str:
    """The article's body as stored in the articles dataset: paragraphs joined by a blank line."""
    return "\n\n".join(text[p.char_start : p.char_end] for p in article.paragraphs)
