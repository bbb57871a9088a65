"""Words and keywords of an article: word counts and the top key phrases.

`keywords_frame` ranks every article of a batch at once (numpy over token codes);
`extract_keywords` runs the very same code on one text.
"""

from __future__ import annotations

import itertools

import numpy as np
import polars as pl

from tasks.schema import C
from tasks.steps.entities import lexicon

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


_CODE_BITS = 21  # an n-gram key packs up to 3 word codes (+1; 0 = no word) into 63 bits
_CODE_MASK = (1 << _CODE_BITS) - 1


def keywords_frame(ids: pl.Series, texts: pl.Series, k: int, *, packed: bool = True) -> pl.DataFrame:
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
                keywords_frame(ids[:half], texts[:half], k, packed=packed),
                keywords_frame(ids[half:], texts[half:], k, packed=packed),
            ]
        )
    top = _top_ngrams(token_ids, code, max(k, 0) * 3 + _KW_CANDIDATES, packed=packed)
    bounds = np.flatnonzero(np.diff(top["id"].to_numpy())) + 1  # first row of each id after the first
    rows = _pick_rows(top["key"].to_list(), top["count"].to_list(), [0, *bounds.tolist(), top.height], k)
    key = top["key"].to_numpy()[rows]
    shifts = (2 * _CODE_BITS, _CODE_BITS, 0)
    codes = {
        f"w{i}": ((key >> np.uint64(sh)) & np.uint64(_CODE_MASK)).astype(np.int64) - 1 for i, sh in enumerate(shifts)
    }
    picked = pl.DataFrame({"id": top["id"].gather(rows), **codes}).select(
        "id",
        pl.concat_str([_vocab_word(pl.col(c), vocab) for c in codes], separator=" ", ignore_nulls=True).alias(
            C.keywords
        ),
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
    is_word = content & ~distinct.is_in(list(lexicon().stopwords))
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
        frame = keywords_frame(pl.Series([0]), pl.Series([f"{title or ''}\n\n{body or ''}"], dtype=pl.String), k)
        return frame[C.keywords][0].to_list() if frame.height else []
    except Exception:  # noqa: BLE001
        return []
