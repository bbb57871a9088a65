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
from functools import lru_cache
from itertools import pairwise
from typing import NamedTuple

from tasks.schema import KIND_MAIN, KIND_RELATED

_RELEASE_TIME = re.compile(r"\s*release\s+time\s*[:：]\s*(?P<value>.*?)\s*$", re.IGNORECASE)
_WHITESPACE = re.compile(r"\s+")

# A sentence ends at . ? ! followed by whitespace, or at 。！？ (optionally followed by
# closing quotes/brackets) -- Chinese needs no space after its full stops. Written as
# "one end mark, then the rest of either alternative" (the lookbehind picks it) rather than
# `[.?!]+...(?=\s)|[。！？]+...`: a pattern that starts with a plain character class lets sre
# skip ahead to the next end mark in C; the two-branch form tried both branches at every
# character (measured 0.11 vs 0.48 s on the 10 MB corpus, same matches).
_SENTENCE_END = re.compile("[.?!。！？](?:(?<=[.?!])[.?!]*[\"'”’)\\]]*(?=\\s)|(?<=[。！？])[。！？]*[”’」』）)]*)")
# The same on text without 。！？ (the first branch alone), and on text without ?! either:
# a literal first char is the fastest scan sre has (memchr-like), ~3x faster than a class,
# and most paragraphs have neither ? nor ! (measured 0.020 vs 0.055 s on 10 MB).
_SENTENCE_END_LATIN = re.compile("[.?!][.?!]*[\"'”’)\\]]*(?=\\s)")
_SENTENCE_END_DOT = re.compile("\\.\\.*[\"'”’)\\]]*(?=\\s)")
# Words that end in "." without ending a sentence.
_ABBREVIATIONS = frozenset(
    [
        "mr",
        "mrs",
        "ms",
        "dr",
        "prof",
        "st",
        "no",
        "nos",
        "vs",
        "etc",
        "co",
        "ltd",
        "inc",
        "corp",
        "jr",
        "sr",
        "gov",
        "gen",
        "rep",
        "sen",
        "dept",
        "est",
        "fig",
        "approx",
        "jan",
        "feb",
        "mar",
        "apr",
        "jun",
        "jul",
        "aug",
        "sep",
        "sept",
        "oct",
        "nov",
        "dec",
        "e.g",
        "i.e",
        "u.s",
        "u.k",
        "u.n",
        "p.m",
        "a.m",
    ]
)
_LAST_WORD = re.compile(r"(\S+)$")
_QUOTES = "\"'“‘("  # stripped from a word before the abbreviation test
_MAX_NO_BREAK = max(map(len, _ABBREVIATIONS))  # longest word (quotes stripped) that can suppress a break
_WINDOW = 12  # chars looked at before a "."; most final words are shorter
_LONG = _MAX_NO_BREAK + 1  # alnum chars (never blank, never a quote) that make a word too long


class Sentence(NamedTuple):
    """[char_start, char_end) of one sentence. A NamedTuple, not a frozen dataclass: built
    ~50k times per 10 MB, and a NamedTuple is ~1.5x cheaper to build (0.40 vs 0.58 us)."""

    char_start: int
    char_end: int


class Paragraph(NamedTuple):
    char_start: int
    char_end: int
    sentences: tuple[Sentence, ...]


@dataclass(frozen=True, slots=True)
class Article:
    kind: str  # KIND_MAIN | KIND_RELATED
    ordinal: int  # position in the file, 0-based
    title_line: str  # the title line, whitespace collapsed: title and tags
    title: str  # the title line without its tags (split_title_and_tags)
    tags: tuple[str, ...]
    release_time_raw: str | None  # value after "Release time:", unparsed (parsed by the enrich step)
    char_start: int  # first title line start
    char_end: int  # end of the last line that belongs to the article
    paragraphs: tuple[Paragraph, ...]
    header_lines: tuple[tuple[int, int], ...]  # title / release / recurring header lines, dropped from the body
    body: str  # the paragraphs joined by a blank line, as stored in the articles dataset
    body: str  # the paragraphs joined by a blank line, as stored in the articles dataset


def _key(stripped: str) -> str:
    """Whitespace-normalised line content ('' for a blank line). " ".join(split()) ==
    _WHITESPACE.sub(" ", ...) here: both use str.isspace's table."""
    # printable ASCII without a double space has no blank run to collapse (C-speed checks)
    if stripped.isascii() and "  " not in stripped and stripped.isprintable():
        return stripped
    return " ".join(stripped.split())


class _Lines:
    """A page's lines as parallel lists (no object per line). `stripped[i]` is the line
    without surrounding whitespace ('' when blank); its normalised key is computed only
    where one is compared (title pairs, the recurring title): most lines are long body
    paragraphs that are never compared, and a key (split + join) and an object for every line
    would be most of the cost of reading a page's lines."""

    __slots__ = ("end", "pair", "start", "stripped")

    def __init__(self, text: str) -> None:
        self.start: list[int] = []  # offset of the first non-whitespace character
        self.end: list[int] = []  # offset after the last non-whitespace character
        self.stripped: list[str] = []
        pos = 0
        add_start, add_end, add_stripped = self.start.append, self.end.append, self.stripped.append
        for raw in text.splitlines(keepends=True):
            stripped = raw.strip()
            # raw.find(first char) == len(raw) - len(raw.lstrip()): all before it is blank
            start = pos + raw.find(stripped[0]) if stripped else pos
            add_start(start)
            add_end(start + len(stripped))
            add_stripped(stripped)
            pos += len(raw)
        self.pair = self._title_pairs()

    def _title_pairs(self) -> list[bool]:
        """pair[i]: line i is non-blank and has the same key as line i + 1."""
        s = self.stripped
        # only adjacent non-blank lines can pair; equal raw text is an equal key
        pair = [bool(a and b) and (a == b or _key(a) == _key(b)) for a, b in pairwise(s)]
        pair += [False] * bool(s)  # the last line has no successor
        return pair

    def key(self, i: int) -> str:
        return _key(self.stripped[i])

    def same_key(self, i: int, key: str, first: str, last: str) -> bool:
        """key(i) == key, where first/last are key's first/last words: a line that does not
        start and end with them cannot match, so its key is never built (and a line equal to
        the key is its own key: a key has no blank to collapse)."""
        s = self.stripped[i]
        return s == key or (s.startswith(first) and s.endswith(last) and _key(s) == key)


# ---------------------------------------------------------------- title line: title and tags

_SPACES = re.compile(r"[\s\u00a0\u2007\u202f\u3000]+")
_PIPE = re.compile(r"\s*[|｜]\s*")
_TITLE_SENTENCE_END = re.compile(r"[.!?。！？][\"'”’)]*\s+")
_MAX_TAG_WORDS, _MAX_TAG_CHARS = 4, 40
_MAX_GLUED_WORDS = 3


def _looks_like_tag(segment: str) -> bool:
    # Tags are short labels: a few words, no sentence punctuation, no quotes.
    return (
        0 < len(segment) <= _MAX_TAG_CHARS
        and len(segment.split()) <= _MAX_TAG_WORDS
        and not re.search(r"[.!?,;:\"“”。！？，]", segment)
    )


def split_title_and_tags(title_line: str) -> tuple[str, list[str]]:
    """Split a title line into (title, tags).

    Rule: split on `|`; the first segment is always title. Walking back from the end,
    segments that look like tags (<= 4 words, <= 40 chars, no sentence punctuation or
    quotes) are tags; the first segment that does not stops the walk, and it and all
    segments before it form the title, re-joined verbatim with " | " (a few pages have a
    subtitle or a pipe inside the title). If at least one tag was found and the title ends
    in a sentence end (". ", "? ", "! ") followed by 1–3 capitalised words with no
    punctuation, those words are the first tag, glued on without a pipe by the site.
    Whitespace (incl. no-break spaces) is collapsed; empty tags dropped; tags deduplicated
    in order. A line without a pipe is all title.
    """
    title, tags = _split_title_and_tags(title_line)
    return title, list(tags)


@lru_cache(maxsize=65536)  # title lines repeat (page headers, reused related articles)
def _split_title_and_tags(title_line: str) -> tuple[str, tuple[str, ...]]:
    """Cached core of split_title_and_tags (tags as a tuple: a cached value must not be mutable)."""
    line = _SPACES.sub(" ", title_line or "").strip()
    segments = [s.strip() for s in _PIPE.split(line)]
    n_title = len(segments)
    while n_title > 1 and (_looks_like_tag(segments[n_title - 1]) or not segments[n_title - 1]):
        n_title -= 1
    title = " | ".join(s for s in segments[:n_title] if s)
    tags = segments[n_title:]
    if tags:
        ends = list(_TITLE_SENTENCE_END.finditer(title))
        if ends:
            tail = title[ends[-1].end() :]
            if tail[:1].isupper() and len(tail.split()) <= _MAX_GLUED_WORDS and _looks_like_tag(tail):
                title, tags = title[: ends[-1].end()].rstrip(), [tail, *tags]
    return title, tuple(dict.fromkeys(t for t in tags if t))


# ---------------------------------------------------------------- sentences


def split_sentences(text: str, start: int, end: int) -> tuple[Sentence, ...]:
    """Sentences of text[start:end] with absolute offsets (whitespace trimmed).

    Splits after `.?!` + whitespace and after `。！？`; not after abbreviations
    (`U.S.`, `Co., Ltd.`, `No.`) nor inside numbers (`3.5` has no space after the dot),
    nor after a one- or two-digit list number (`1. The time ...`).
    """
    pattern = _end_pattern(text[start:end])
    sentences: list[Sentence] = []
    cursor = start
    for match in pattern.finditer(text, start, end):
        mark = match.start()
        # a "." after _LONG letters/digits ends a sentence (the word is too long to be any
        # no-break case): settles most dots without building the word
        if (
            text[mark] == "."
            and not (mark - _LONG >= cursor and text[mark - _LONG : mark].isalnum())
            and _no_break(text, cursor, mark)
        ):
            continue
        # text[cursor:cut] ends in the (non-blank) end mark: only its start needs trimming,
        # and the loop stops at the mark at the latest
        s = cursor
        while text[s].isspace():
            s += 1
        cut = match.end()
        sentences.append(Sentence(s, cut))
        cursor = cut
    _append_trimmed(text, cursor, end, sentences)
    return tuple(sentences)


def _end_pattern(piece: str) -> re.Pattern[str]:
    """The cheapest of the three sentence-end patterns that finds the same ends in piece."""
    if not piece.isascii() and ("。" in piece or "！" in piece or "？" in piece):
        return _SENTENCE_END
    if "?" in piece or "!" in piece:
        return _SENTENCE_END_LATIN
    return _SENTENCE_END_DOT


def _no_break(text: str, lo: int, dot: int) -> bool:
    """True when the word before the "." at `dot` (not before `lo`) is an abbreviation, a
    single letter or a one- or two-digit number."""
    token = _word_before(text, lo, dot)
    if token is None:
        return False
    token = token.lower().strip(_QUOTES)
    return token in _ABBREVIATIONS or (len(token) == 1 and token.isalpha()) or (token.isdigit() and len(token) <= 2)


def _word_before(text: str, lo: int, hi: int) -> str | None:
    """_last_word(text, lo, hi), or None when that word is certainly too long to stop a break.

    Looks only at the last _WINDOW chars (rsplit in C) instead of walking back char by char:
    the word is the window's last non-blank run unless it fills the whole window; then the
    word contains the window, and if the window holds > _MAX_NO_BREAK chars once quotes are
    stripped, so does the word (.lower() never shortens), so no test can pass."""
    end = hi - 1 if hi > lo and text[hi - 1] == "\n" else hi
    floor = max(lo, end - _WINDOW)
    window = text[floor:end]
    if not window or window[-1].isspace():
        return ""
    word = window.rsplit(None, 1)[-1]
    if len(word) < len(window) or floor == lo:
        return word
    if len(window.strip(_QUOTES)) > _MAX_NO_BREAK:
        return None
    return _last_word(text, lo, hi)


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


def _paragraphs(text: str, lines: _Lines, lo: int, hi: int, drop: set[int]) -> tuple[Paragraph, ...]:
    """Group consecutive kept non-blank lines of lines[lo:hi] into paragraphs; dropped lines separate too."""
    paragraphs: list[Paragraph] = []
    stripped, starts, ends = lines.stripped, lines.start, lines.end
    first = last = -1  # first / last line of the current run, -1 when none
    for i in range(lo, hi + 1):
        if i < hi and stripped[i] and i not in drop:
            if first < 0:
                first = i
            last = i
            continue
        if first >= 0:
            a, b = starts[first], ends[last]
            paragraphs.append(Paragraph(a, b, split_sentences(text, a, b)))
            first = -1
    return tuple(paragraphs)


def _related_start(lines: _Lines, first: int) -> int:
    pair = lines.pair
    for i in range(first, len(pair)):
        if pair[i]:
            return i
    return len(pair)


def _main_article(text: str, lines: _Lines, end_line: int) -> Article | None:
    stripped = lines.stripped
    nonblank = [i for i in range(end_line) if stripped[i]]
    if not nonblank:
        return None
    title_i = nonblank[0]
    title_key = lines.key(title_i)
    header = {title_i}
    release_raw = None
    if len(nonblank) > 1 and (m := _RELEASE_TIME.fullmatch(lines.key(nonblank[1]))):
        release_raw = m.group("value") or None
        header.add(nonblank[1])
    # The title recurs as a page separator inside the body (and once more at the end).
    words = title_key.split(" ")
    header.update(i for i in nonblank if lines.same_key(i, title_key, words[0], words[-1]))
    paragraphs = _paragraphs(text, lines, title_i, end_line, header)
    title, tags = _split_title_and_tags(title_key)
    return Article(
        kind=KIND_MAIN,
        ordinal=0,
        title_line=title_key,
        title=title,
        tags=tags,
        release_time_raw=release_raw,
        char_start=lines.start[title_i],
        char_end=lines.end[nonblank[-1]],
        paragraphs=paragraphs,
        header_lines=tuple((lines.start[i], lines.end[i]) for i in sorted(header)),
        body=_body(text, paragraphs),
    )


def _related_articles(text: str, lines: _Lines, first: int, ordinal: int) -> list[Article]:
    articles: list[Article] = []
    pair, stripped, starts, ends = lines.pair, lines.stripped, lines.start, lines.end
    n = len(pair)
    i = first
    while i < n:
        if not pair[i]:
            i += 1
            continue
        j = i + 2
        while j < n and not pair[j]:
            j += 1
        paragraphs = _paragraphs(text, lines, i + 2, j, set())
        last = max([i + 1] + [k for k in range(i + 2, j) if stripped[k]])
        title_line = lines.key(i)
        title, tags = _split_title_and_tags(title_line)
        articles.append(
            Article(
                kind=KIND_RELATED,
                ordinal=ordinal,
                title_line=title_line,
                title=title,
                tags=tags,
                release_time_raw=None,
                char_start=starts[i],
                char_end=ends[last],
                paragraphs=paragraphs,
                header_lines=((starts[i], ends[i]), (starts[i + 1], ends[i + 1])),
                body=_body(text, paragraphs),
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
    lines = _Lines(text)
    first_nonblank = next((i for i, line in enumerate(lines.stripped) if line), None)
    if first_nonblank is None:
        return []
    if lines.pair[first_nonblank]:
        return _related_articles(text, lines, first_nonblank, ordinal=0)
    related_at = _related_start(lines, first_nonblank + 1)
    main = _main_article(text, lines, related_at)
    articles: list[Article] = [main] if main else []
    articles += _related_articles(text, lines, related_at, ordinal=len(articles))
    return articles


def _body(text: str, paragraphs: tuple[Paragraph, ...]) -> str:
    """An article's body as stored in the articles dataset: paragraphs joined by a blank line."""
    return "\n\n".join([text[start:end] for start, end, _ in paragraphs])
