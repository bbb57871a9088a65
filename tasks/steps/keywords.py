"""Words and keywords of an article: word counts and the top key phrases.

`keywords_frame` ranks every article of a batch at once (numpy over token codes);
`extract_keywords` runs the very same code on one text.

Keywords are 1-4-grams of content words inside one clause (punctuation breaks them); a
phrase must occur at least twice; score = count x n, ties alphabetical; redundant sub- and
super-phrases are skipped (`_pick_keywords`). Not keywords:
- stop words (lexicons/stopwords.txt, and kw_stop.txt: light verbs, time words, frames of
  official prose), words under three letters, adverbs in -ly (except kw_stop.txt [ly-words]);
- number words (kw_numbers.txt: "five", "half", "first") on their own or at a phrase's edge;
  inside a phrase they stay: "national two sessions";
- modifiers (kw_modifiers.txt: "new") on their own or at a phrase's end; they may start
  one: "new productive forces";
- the words of the names of the article's people: they cut phrases, so there is no "qing"
  (from Wu Qing) and no "jining led" (the names are in the people column).
Deterministic: no randomness, ties broken by the text.
"""

from __future__ import annotations

import itertools
from functools import cache

import numpy as np
import polars as pl

from tasks.schema import C
from tasks.steps.lexicons import word_list

_CJK = r"\p{Han}\p{Hiragana}\p{Katakana}"
_WORD = rf"[{_CJK}]|[[\p{{L}}\p{{N}}]--[{_CJK}]]+(?:['’-][[\p{{L}}\p{{N}}]--[{_CJK}]]+)*"
_TOKEN = r"[a-z][a-z0-9]*(?:-[a-z0-9]+)*|[^\sa-z0-9'’-]"  # words, or any other char as a break
_KW_CANDIDATES = 60  # per article, before redundancy filtering


def word_count_expr(text: pl.Expr) -> pl.Expr:
    return text.str.count_matches(_WORD).cast(pl.Int64)


def count_words(text: str) -> int:
    """Words: runs of letters/digits (inner ' ’ - allowed), plus one per Han/kana character."""
    try:
        return int(pl.select(word_count_expr(pl.lit(text or "", dtype=pl.String))).item())
    except Exception:  # noqa: BLE001
        return 0


@cache
def _word_lists() -> tuple[list[str], list[str], list[str], list[str]]:
    """(stop words, number words, modifiers, -ly words that are not adverbs)."""
    stop, ly = [*word_list("stopwords.txt")], []
    section = stop
    for ln in word_list("kw_stop.txt"):
        if ln == "[ly-words]":
            section = ly
            continue
        section.append(ln)
    numbers, modifiers = word_list("kw_numbers.txt"), word_list("kw_modifiers.txt")
    return sorted(set(stop) - set(numbers) - set(modifiers)), numbers, modifiers, ly


# A key packs up to four word codes (code + 1; 0 = no word), first word in the top slot:
# w1 << 48 | w2 << 32 | w3 << 16 | w4. Sorting keys sorts their phrases (codes are
# alphabetical, a phrase before its extensions). A batch with more distinct words is halved.
_MAX_N = 4
_CODE_BITS = 16
_CODE_MASK = (1 << _CODE_BITS) - 1
_SLOT_SHIFTS = tuple(_CODE_BITS * (_MAX_N - 1 - i) for i in range(_MAX_N))  # 48, 32, 16, 0


def keywords_frame(
    ids: pl.Series, texts: pl.Series, k: int, people: pl.Series | None = None, *, packed: bool = True
) -> pl.DataFrame:
    """Top-k keywords per id (columns id, keywords); see the module docstring for the rule.

    `people` (List[String], one per text: the article's people column) makes the words of
    those names breaks in that text; None finds them (tasks/steps/entities.py).
    `packed=False` forces the polars n-gram count of `_top_ngrams` (tests compare both)."""
    if people is None:
        from tasks.steps.entities import entities_frame

        people = entities_frame(texts)["people"]
    tokens = (
        pl.DataFrame({"id": ids, "t": texts})
        .with_columns(
            pl.col("t").fill_null("").str.to_lowercase().str.replace_all(r"['’]s\b", "").str.extract_all(_TOKEN)
        )
        .with_row_index("_article")
        .explode("t")
        .drop_nulls("t")
    )
    code, vocab, no_start, no_end = _token_codes(tokens["t"])
    if len(vocab) >= _CODE_MASK and ids.len() > 1:  # codes would not fit their slots: halve the batch
        half = ids.len() // 2
        return pl.concat(
            [
                keywords_frame(ids[:half], texts[:half], k, people[:half], packed=packed),
                keywords_frame(ids[half:], texts[half:], k, people[half:], packed=packed),
            ]
        )
    if len(vocab) >= _CODE_MASK:  # one huge article: its rarest words become breaks
        code, vocab = _most_frequent(code, vocab, _CODE_MASK - 1)
    code[_name_tokens(tokens["_article"].to_numpy(), code, vocab, people)] = 0
    token_ids = tokens["id"]
    del tokens  # the batch's tokens as strings: counting needs only their codes
    top = _top_ngrams(token_ids, code, max(k, 0) * 3 + _KW_CANDIDATES, no_start, no_end, packed=packed)
    bounds = np.flatnonzero(np.diff(top["id"].to_numpy())) + 1  # first row of each id after the first
    rows = _pick_rows(top["key"].to_list(), top["count"].to_list(), [0, *bounds.tolist(), top.height], k)
    key = top["key"].to_numpy()[rows]
    codes = {
        f"w{i}": ((key >> np.uint64(sh)) & np.uint64(_CODE_MASK)).astype(np.int64) - 1
        for i, sh in enumerate(_SLOT_SHIFTS)
    }
    words = [_vocab_word(pl.col(c), vocab) for c in codes]
    picked = pl.DataFrame({"id": top["id"].gather(rows), **codes}).select(
        "id", pl.concat_str(words, separator=" ", ignore_nulls=True).alias(C.keywords)
    )
    ranked = picked.group_by("id", maintain_order=True).agg(C.keywords)
    return ranked.cast({"id": ids.dtype, C.keywords: pl.List(pl.String)})


def _name_tokens(article: np.ndarray, code: np.ndarray, vocab: pl.Series, people: pl.Series) -> np.ndarray:
    """Which tokens are words of a name among their article's people ("qing" of Wu Qing).
    `article`: each token's article (row of `people`); `code`: word code + 1 of each token."""
    names = (
        pl.DataFrame({"_article": pl.Series(range(people.len()), dtype=pl.UInt32), "n": people})
        .cast({"n": pl.List(pl.String)})
        .explode("n")
        .drop_nulls("n")
        .select("_article", pl.col("n").str.to_lowercase().str.extract_all(_TOKEN).alias("t"))
        .explode("t")
        .join(pl.DataFrame({"t": vocab, "code": np.arange(1, len(vocab) + 1, dtype=np.int64)}), on="t")
    )
    found = np.zeros(len(code), dtype=bool)
    if names.height == 0:
        return found
    # Only tokens whose word is in some name are looked up as (article, word) pairs: few.
    name_code, name_article = names["code"].to_numpy(), names["_article"].to_numpy().astype(np.int64)
    in_a_name = np.zeros(len(vocab) + 1, dtype=bool)
    in_a_name[name_code] = True
    at = np.flatnonzero(in_a_name[code])
    pairs = (article[at].astype(np.int64) << 32) | code[at].astype(np.int64)
    found[at] = np.isin(pairs, (name_article << 32) | name_code)
    return found


def _token_codes(tokens: pl.Series) -> tuple[np.ndarray, pl.Series, np.ndarray, np.ndarray]:
    """(word code + 1 of each token, 0 = a break; the vocabulary, alphabetical; and indexed
    by code + 1: no_start (number words), no_end (number words and modifiers))."""
    # Content words (others are n-gram breaks) are few and distinct: test each distinct token
    # once. A private Categorical numbers the distinct tokens in one hashing pass (unique +
    # Enum cast took two); a lookup table turns those numbers into codes.
    categories = pl.Categories.random()
    numbered = tokens.cast(pl.Categorical(categories))
    distinct = categories.to_series()  # read while `numbered` holds them: unused ones are freed
    stop, numbers, modifiers, ly_words = _word_lists()
    content = distinct.str.contains(r"^[a-z]") & (distinct.str.len_chars() >= 3)
    adverb = distinct.str.contains(r"^[a-z]{3,}ly$") & ~distinct.is_in(ly_words)
    is_word = (content | distinct.is_in(numbers)) & ~distinct.is_in(stop) & ~adverb
    words = distinct.filter(is_word)
    order = words.arg_sort().to_numpy()  # codes in alphabetical order: sorting n-grams by code sorts their text
    lookup = np.zeros(len(distinct), dtype=np.uint32)  # half the bytes of uint64 to scan and gather
    lookup[np.flatnonzero(is_word.to_numpy())[order]] = np.arange(1, len(words) + 1, dtype=np.uint32)
    vocab = words.gather(order)
    no_start = np.concatenate(([False], vocab.is_in(numbers).to_numpy()))
    no_end = no_start | np.concatenate(([False], vocab.is_in(modifiers).to_numpy()))
    return lookup[numbered.to_physical().to_numpy()], vocab, no_start, no_end


def _most_frequent(code: np.ndarray, vocab: pl.Series, n: int) -> tuple[np.ndarray, pl.Series]:
    """Keep the n most frequent words (ties alphabetical), renumbered; the others become breaks."""
    freq = np.bincount(code, minlength=len(vocab) + 1)[1:]
    keep = np.sort(np.lexsort((np.arange(len(vocab)), -freq))[:n])
    remap = np.zeros(len(vocab) + 1, dtype=code.dtype)
    remap[keep + 1] = np.arange(1, len(keep) + 1, dtype=code.dtype)
    return remap[code], vocab.gather(keep)


def _vocab_word(code: pl.Expr, vocab: pl.Series) -> pl.Expr:
    """Word of a 0-based vocab code; null for -1 (no word)."""
    return pl.when(code >= 0).then(pl.lit(vocab).gather(code.clip(0)))


def _top_ngrams(
    ids: pl.Series,
    code: np.ndarray,
    cap: int,
    no_start: np.ndarray | None = None,
    no_end: np.ndarray | None = None,
    *,
    packed: bool = True,
) -> pl.DataFrame:
    """id, key, count of each article's best `cap` n-grams (n = 1..4; a phrase must repeat;
    best first: score = count x n desc, then alphabetical). `code` = word code + 1 per token,
    0 = a break; `no_start`/`no_end` (indexed by code) bar words from a phrase's edges.

    Keys have the _SLOT_SHIFTS layout. When an article number and three word codes fit one
    uint64 (nearly always) the n-grams are counted in numpy on packed keys (`_top_packed`);
    else, or with packed=False, in polars frames (`_top_frames`). Both give the same frame."""
    if no_start is None or no_end is None:
        no_start = no_end = np.zeros(int(code.max(initial=0)) + 1, dtype=bool)
    top = _top_packed(ids, code, cap, no_start, no_end) if packed else None
    return top if top is not None else _top_frames(ids, code, cap, no_start, no_end)


def _article_ranks(ids: pl.Series) -> tuple[np.ndarray, np.ndarray] | None:
    """(distinct ids ascending, each token's index into them); None for ids numpy can't rank
    exactly (nulls, floats: the polars path handles them)."""
    if not ids.dtype.is_integer() or ids.null_count() or ids.len() == 0:
        return None
    id_ = ids.to_numpy()
    if (id_[1:] >= id_[:-1]).all():  # tokens come in article order: no sort needed
        starts = np.flatnonzero(np.concatenate(([True], id_[1:] != id_[:-1])))
        return id_[starts], np.repeat(np.arange(len(starts)), np.diff(np.append(starts, len(id_))))
    return np.unique(id_, return_inverse=True)


def _edges_ok(words: list[np.ndarray], no_start: np.ndarray, no_end: np.ndarray) -> np.ndarray:
    """n-grams (slot arrays of codes + 1, 0 = absent) whose first and last words may be there."""
    last = words[0]
    for w in words[1:]:
        last = np.where(w > 0, w, last)
    return ~no_start[words[0].astype(np.intp)] & ~no_end[last.astype(np.intp)]


def _top_packed(
    ids: pl.Series, code: np.ndarray, cap: int, no_start: np.ndarray, no_end: np.ndarray
) -> pl.DataFrame | None:
    """`_top_ngrams` on uint64 keys article << 3b | w1 << 2b | w2 << b | w3 (b bits a code,
    article = rank of the id) for n <= 3, and 4-grams counted from the repeated 3-grams they
    extend; None when the keys would not fit in 64 bits or the ids can't be ranked."""
    ranked = _article_ranks(ids)
    if ranked is None:
        return None
    uid, rank = ranked
    bits = max(int(code.max()), 1).bit_length()
    if 3 * bits + (len(uid) - 1).bit_length() > 64:
        return None
    key, count, four, four_count, before = _count_packed(rank, code, bits)
    mask = np.uint64((1 << bits) - 1)
    slots = [(key >> np.uint64(sh)) & mask for sh in (2 * bits, bits, 0)] + [np.zeros(len(key), np.uint64)]
    n = 1 + (slots[1] > 0) + (slots[2] > 0)
    art = (key >> np.uint64(3 * bits)).astype(np.intp)
    if len(four):  # each 4-gram goes right after the 3-gram it extends: the order stays alphabetical
        prefix = four >> np.uint64(bits)
        slots = [np.insert(s, before, s[prefix.astype(np.intp)]) for s in slots[:3]]
        slots.append(np.insert(np.zeros(len(key), np.uint64), before, four & mask))
        n, art, count = (
            np.insert(n, before, 4),
            np.insert(art, before, art[prefix.astype(np.intp)]),
            np.insert(count, before, four_count),
        )
    # A phrase must repeat. (The frames also drop one-off words of articles with `cap`
    # repeated terms; here the head does: they score 1, below every repeated term.)
    keep = ((count >= 2) | (n == 1)) & _edges_ok(slots, no_start, no_end)
    rows = _best_first(art[keep], (count * n)[keep], cap)
    picked = [s[keep][rows] for s in slots]
    return pl.DataFrame(
        {
            "id": pl.Series(uid[art[keep][rows]]).cast(ids.dtype),
            "key": sum((w << np.uint64(sh) for w, sh in zip(picked, _SLOT_SHIFTS, strict=True)), np.uint64(0)),
            "count": count[keep][rows].astype(np.uint32),
        }
    )


def _count_packed(
    rank: np.ndarray, code: np.ndarray, bits: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Distinct packed 1-/2-/3-gram keys (ascending) and how often each occurs; then the
    repeated 4-grams as prefix << bits | w4 (prefix = index of their first three words among
    the keys, ascending), their counts, and where each goes among the keys."""
    at = np.flatnonzero(code)  # words only: breaks just cut n-grams
    c, r = code[at].astype(np.uint64), rank[at]
    two = (at[1:] - at[:-1] == 1) & (r[1:] == r[:-1])  # word j + 1 follows word j in its article
    three = two[:-1] & two[1:]
    first = (r.astype(np.uint64) << np.uint64(3 * bits)) | (c << np.uint64(2 * bits))
    second = c[1:] << np.uint64(bits)
    trigrams = first[:-2] | second[:-1] | c[2:]
    grams = np.concatenate([first, (first[:-1] | second)[two], trigrams[three]])
    key, count = np.unique(grams, return_counts=True)
    # A 4-gram repeats only where the 3-grams it starts and ends with both repeat: few places.
    four = np.flatnonzero(three[:-1] & three[1:])
    head = np.searchsorted(key, trigrams[four])
    tail = np.searchsorted(key, trigrams[four + 1])
    both = (count[head] >= 2) & (count[tail] >= 2)
    four, head = four[both], head[both]
    four_key, four_count = np.unique((head.astype(np.uint64) << np.uint64(bits)) | c[four + 3], return_counts=True)
    repeated = four_count >= 2
    four_key, four_count = four_key[repeated], four_count[repeated]
    return key, count, four_key, four_count, (four_key >> np.uint64(bits)).astype(np.intp) + 1


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


def _top_frames(ids: pl.Series, code: np.ndarray, cap: int, no_start: np.ndarray, no_end: np.ndarray) -> pl.DataFrame:
    """`_top_ngrams` with polars frames: one per n, then group_by (id, key)."""
    id_ = ids.to_numpy()
    grams = []
    for n in range(1, _MAX_N + 1):
        m = len(code) - n + 1
        if m <= 0:
            break
        key = np.zeros(m, dtype=np.uint64)
        ok = np.ones(m, dtype=bool)
        words = []
        for i in range(n):  # word i of the n-gram: must exist and stay in the same article
            c = code[i : i + m].astype(np.uint64)
            key |= c << np.uint64(_SLOT_SHIFTS[i])
            ok &= (c > 0) & (id_[i : i + m] == id_[:m])
            words.append(c)
        ok &= _edges_ok(words, no_start, no_end)
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


@cache
def _parts(key: int) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """(every proper sub-phrase, the proper prefixes, the proper suffixes) of a phrase key,
    each as a key (first word in the top slot)."""
    words = [(key >> sh) & _CODE_MASK for sh in _SLOT_SHIFTS]
    words = words[: next((i for i, w in enumerate(words) if not w), _MAX_N)]

    def pack(ws: list[int]) -> int:
        return sum(w << sh for w, sh in zip(ws, _SLOT_SHIFTS, strict=False))

    n = len(words)
    subs = tuple(pack(words[i:j]) for i in range(n) for j in range(i + 1, n + 1) if j - i < n)
    return subs, tuple(pack(words[:j]) for j in range(1, n)), tuple(pack(words[i:]) for i in range(1, n))


_REST = (1 << _SLOT_SHIFTS[0]) - 1  # every slot after the first


def _pick_keywords(keys: list[int], counts: list[int], k: int, start: int = 0, end: int | None = None) -> list[int]:
    """Indices of the picked keys among keys[start:end] (n-gram keys of `_top_ngrams`, best
    first; a range rather than a slice: the loop rarely reads far, a slice copies all).

    Redundancy: skip a phrase inside a picked one unless it is clearly used on its own
    (> 1.25x as often), a phrase that contains a picked one, and one that overlaps a picked
    phrase's edge ("jining led" after "chen jining": a's start is b's end or a's end is b's
    start). Sub-phrases, prefixes and suffixes are keys too, and what the picked phrases
    rule out is kept in sets: each check is a C-level lookup (this loop ran ~0.4 s per
    10 MB as string comparisons)."""
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
        subs, pre, suf = _parts(key)
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


def extract_keywords(title: str, body: str, k: int = 10, people: list[str] | None = None) -> list[str]:
    """Top-k keywords of title + body, lower-cased (see the module docstring). `people`:
    the article's people, whose names' words are breaks; None finds them. Deterministic."""
    try:
        text = f"{title or ''}\n\n{body or ''}"
        names = None if people is None else pl.Series([people], dtype=pl.List(pl.String))
        frame = keywords_frame(pl.Series([0]), pl.Series([text], dtype=pl.String), k, names)
        return frame[C.keywords][0].to_list() if frame.height else []
    except Exception:  # noqa: BLE001
        return []
