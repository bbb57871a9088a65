"""The sign step: word 5-shingles of an article's title and body -> a MinHash signature.

Signatures are persisted in the MINHASH_INDEX dataset and compared across runs, machines
and library upgrades, so every hash here is defined by hashlib + fixed 64-bit arithmetic:
no Python `hash()`, no `pl.Series.hash` (unstable across polars versions), no numpy RNG
streams. The near-duplicate search over them is tasks/steps/dedupe.py.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable, Sequence
from datetime import datetime
from functools import lru_cache
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl

from tasks.schema import MINHASH_INDEX, SIGNATURE_LENGTH, TIMEZONE, C, conform, empty_frame
from tasks.steps.identity import normalize_text

SHINGLE_K = 5
_U64 = np.uint64
_MASK64 = (1 << 64) - 1
NO_WORDS = (1 << 32) - 1  # signature values are 32-bit (see minhash_signatures); all ones = a text without words
_INDEX_SCHEMA = empty_frame(MINHASH_INDEX.schema).schema

_WORD = re.compile(r"\w+")
_WORD_PL = r"[\p{L}\p{N}_]+"  # polars (Rust regex) spelling of Python's \w, see _word_hashes


# ---------------------------------------------------------------------------- what is signed


def signature_text_expr() -> pl.Expr:
    """Title and body as one string (before normalization), as near-duplicate detection
    compares them. A new string: selecting it from a filtered scan holds only the kept rows'
    text, not the scanned buffers their string views would point into."""
    return pl.concat_str([pl.col(C.title), pl.col(C.body)], separator="\n\n")


def signature_texts(articles: pl.DataFrame) -> list[str]:
    """What near-duplicate detection compares: the normalized title and body."""
    return [normalize_text(text) for text in articles.select(signature_text_expr()).to_series()]


def _signature_words_texts(articles: pl.DataFrame) -> list[str]:
    """Texts with exactly the \\w+ tokens of `signature_texts` (what MinHash reads), minus the
    whitespace work: normalize_text only changes whitespace (never a \\w char), drops BOMs
    and applies NFC; MinHash applies NFC again and ignores whitespace. (The full
    normalization was 0.9 s of a 12 s 8 MB batch.)"""
    out = []
    for title, body in articles.select(C.title, C.body).iter_rows():
        text = f"{title}\n\n{body}"
        if not text.isascii():
            text = unicodedata.normalize("NFC", text)
            if "\ufeff" in text:
                text = text.replace("\ufeff", "")
        out.append(text)
    return out


def sign_articles(articles: pl.DataFrame) -> pl.DataFrame:
    """Index rows (MINHASH_INDEX schema) of enriched articles (article_id, published_at,
    title, body): the batch entry point of this step."""
    signed = signatures_frame(
        articles.get_column(C.article_id).to_list(),
        articles.get_column(C.published_at).to_list(),
        _signature_words_texts(articles),
    )
    return conform(signed, MINHASH_INDEX.schema)


# ---------------------------------------------------------------------------- shingles


def _words(text: str) -> list[str]:
    # \w+ tokens ignore whitespace, so only NFC + lowercase matter (skips the costlier
    # full normalize_text on the hot path).
    return _WORD.findall(unicodedata.normalize("NFC", text).lower())


def shingles(text: str, k: int = SHINGLE_K) -> set[str]:
    """Word k-shingles (space-joined) of the lowercased normalized words. A text of 1..k-1
    words is one shingle (the whole text); a text without words has no shingles."""
    words = _words(text)
    if len(words) < k:
        return {" ".join(words)} if words else set()
    return {" ".join(words[i : i + k]) for i in range(len(words) - k + 1)}


def jaccard(a: set[str], b: set[str]) -> float:
    """|a & b| / |a | b|; 0.0 when both are empty (a wordless text duplicates nothing)."""
    union = len(a | b)
    return len(a & b) / union if union else 0.0


class _WordHashes(dict[str, int]):
    """word -> 64-bit blake2b, memoised: the vocabulary is tiny next to the token count."""

    def __missing__(self, word: str) -> int:
        if len(self) > 2_000_000:  # bound memory on pathological input
            self.clear()
        h = self[word] = int.from_bytes(hashlib.blake2b(word.encode("utf-8"), digest_size=8).digest(), "little")
        return h


_WORD_HASHES = _WordHashes()


def fmix64(h: np.ndarray) -> np.ndarray:
    """MurmurHash3's 64-bit finalizer (a bijection with full avalanche), in place."""
    h ^= h >> _U64(33)
    h *= _U64(0xFF51AFD7ED558CCD)
    h ^= h >> _U64(33)
    h *= _U64(0xC4CEB93FE1A85EC5)
    h ^= h >> _U64(33)
    return h


def _word_hashes(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(64-bit hashes of all the texts' words, concatenated; number of words per text).

    The same words as `_words` (NFC, lowercase, Python's `\\w+`), tokenized in polars: the
    class `_WORD_PL` equals Python's `\\w`, and polars' lowercasing equals str.lower(), on
    every code point assigned in Python's Unicode database (both checked over all code
    points; they differ only on code points Python's Unicode version leaves unassigned).
    Why pieces: a regex match per word costs ~100 ns, so the texts are only split at spaces
    (a space is never part of a word, nor context for lowercasing) and each distinct piece
    is lowercased and tokenized once; each distinct word is hashed once (blake2b, memoised)."""
    nfc = [t if t.isascii() else unicodedata.normalize("NFC", t) for t in texts]  # cheap when already NFC
    split = pl.Series(nfc, dtype=pl.String).str.split(" ")
    n_pieces = split.list.len().to_numpy().astype(np.int64)
    pieces = split.explode(empty_as_null=False, keep_nulls=False)
    distinct = pieces.unique()
    piece = pieces.cast(pl.Enum(distinct)).to_physical().to_numpy()  # index into `distinct`
    words = distinct.str.to_lowercase().str.extract_all(_WORD_PL)
    per_piece = words.list.len().to_numpy().astype(np.int64)
    flat_words = words.explode(empty_as_null=False, keep_nulls=False).to_list()
    word_hash = np.fromiter(map(_WORD_HASHES.__getitem__, flat_words), dtype=_U64, count=len(flat_words))
    # expand every piece occurrence into its words' hashes, in text order
    occ = per_piece[piece]
    seen = np.cumsum(occ) - occ  # words before this occurrence
    first_word = np.cumsum(per_piece) - per_piece  # of each distinct piece in word_hash
    idx = np.repeat(first_word[piece] - seen, occ) + np.arange(int(occ.sum()))
    bounds = np.concatenate(([0], np.cumsum(occ)))[np.cumsum(n_pieces)]
    lens = np.diff(bounds, prepend=0)
    return word_hash[idx], lens


def _chain(h: np.ndarray, words: Iterable[np.ndarray]) -> np.ndarray:
    """Fold word hashes into h (seeded with the shingle width) through fmix64."""
    with np.errstate(over="ignore"):
        for w in words:
            h = fmix64(h ^ w)
    return h


def _shingle_hashes_batch(texts: Sequence[str], k: int = SHINGLE_K) -> tuple[np.ndarray, np.ndarray]:
    """(hashes, counts): 64-bit hashes of the shingles of all texts, concatenated in text
    order, and the number per text. A shingle's hash folds its k word hashes; computed for
    every window of the concatenated word stream at once (contiguous slices, no gathers),
    then the windows inside one text kept. A text of 1..k-1 words has one shingle of all
    its words (width-seeded, so it differs from any window); a wordless text has none."""
    w, lens = _word_hashes(texts)
    counts = np.where(lens >= k, lens - k + 1, np.minimum(lens, 1))
    start = np.cumsum(lens) - lens  # of each text's first word in w
    first = np.cumsum(counts) - counts  # of each text's first shingle in the output
    out = np.empty(int(counts.sum()), dtype=_U64)
    m = len(w) - k + 1
    if m > 0:
        full = _chain(np.full(m, k, dtype=_U64), (w[t : t + m] for t in range(k)))
        # shingle j of a text is window start + j; a short text's entry is replaced below
        window = np.repeat(start - first, counts) + np.arange(len(out))
        out[:] = full[np.minimum(window, m - 1)]
    for n in np.unique(lens[(lens > 0) & (lens < k)]).tolist():  # rare: short texts, by width
        sel = np.flatnonzero(lens == n)
        out[first[sel]] = _chain(np.full(len(sel), n, dtype=_U64), (w[start[sel] + t] for t in range(n)))
    return out, counts


def shingle_sets(texts: Sequence[str], batch_texts: int = 1024) -> list[np.ndarray]:
    """Each text's shingle set as sorted unique 64-bit hashes, vectorized over `batch_texts`
    texts at a time (bounds the tokenizer's memory). Verifying candidates with these instead
    of `shingles` string sets: measured 15 s of a 100 MB run's 21 s near-duplicate search.
    Equal to the string Jaccard unless two distinct shingles collide in 64 bits (expected
    ~n^2 / 2^65: never at these sizes)."""
    out: list[np.ndarray] = []
    for lo in range(0, len(texts), batch_texts):
        h, counts = _shingle_hashes_batch(texts[lo : lo + batch_texts])
        out += [np.unique(part) for part in np.split(h, np.cumsum(counts)[:-1])]
    return out


def jaccard_hashed(a: np.ndarray, b: np.ndarray) -> float:
    """`jaccard` over sorted unique hash arrays."""
    if not len(a) and not len(b):
        return 0.0
    inter = len(np.intersect1d(a, b, assume_unique=True))
    return inter / (len(a) + len(b) - inter)


def shingle_hashes(text: str, k: int = SHINGLE_K) -> np.ndarray:
    """uint64 hashes of `shingles(text, k)` (in text order, may repeat)."""
    return _shingle_hashes_batch([text], k)[0]


# ---------------------------------------------------------------------------- minhash


@lru_cache(maxsize=16)
def _oph_params(num_perm: int, seed: int) -> tuple[np.uint64, np.ndarray]:
    """(seed key, probe orders) from sha256: reproducible anywhere, unlike numpy RNG.
    Row i of the probe table is a fixed pseudo-random order of all bins, the order in which
    empty bin i looks for a donor (so it always finds one in a non-empty signature)."""
    key = int.from_bytes(hashlib.sha256(f"newsflow-oph:{seed}".encode()).digest()[:8], "little")
    cells = np.arange(num_perm * num_perm, dtype=_U64).reshape(num_perm, num_perm)
    with np.errstate(over="ignore"):
        noise = fmix64(cells ^ _U64(key ^ 0x9E3779B97F4A7C15))
    return _U64(key), np.argsort(noise, axis=1, kind="stable")


def _densify(sig: np.ndarray, filled: np.ndarray, probes: np.ndarray) -> None:
    """Fill every empty bin of the non-empty rows, in place, with the value of the first
    originally filled bin in that bin's probe order ("optimal densification", Shrivastava
    2017: two sets then agree on a bin with probability exactly their Jaccard)."""
    rows, bins = np.nonzero(~filled & filled.any(axis=1)[:, None])
    for j in range(probes.shape[1]):  # bounded: each probe order visits every bin
        if not len(rows):
            break
        donor = probes[bins, j]
        hit = filled[rows, donor]
        sig[rows[hit], bins[hit]] = sig[rows[hit], donor[hit]]
        rows, bins = rows[~hit], bins[~hit]


def minhash_signatures(
    texts: Sequence[str], num_perm: int = SIGNATURE_LENGTH, seed: int = 1, *, batch_texts: int = 1024
) -> np.ndarray:
    """(n, num_perm) uint32 MinHash signatures of the texts' word 5-shingles.

    One-permutation hashing with densification: a shingle hash h is re-mixed with the seed,
    v = fmix64(h ^ key); its high 32 bits pick one of num_perm bins and the bin keeps the
    smallest v; bins no shingle fell into copy a donor bin (`_densify`). Each position
    matches between two texts with probability = their shingle Jaccard, as with num_perm
    independent permutations, at the cost of one pass over the shingles instead of
    num_perm. A bin keeps the low 32 bits of its minimum (b-bit MinHash, b = 32): two
    different minima then agree by accident with probability 2^-32, and the index is half
    the size (~0.5 KB an article; it is held whole by the global near-duplicate step). A
    text without words gets the all-ones signature, which LSH ignores. `batch_texts` bounds
    the memory of one pass (measured on an 8 MB batch's 2,900 texts: +15 MB at 1,024 texts
    a pass, +70-105 MB at 4,096, and no faster)."""
    out = np.full((len(texts), num_perm), NO_WORDS, dtype=np.uint32)
    for lo in range(0, len(texts), batch_texts):
        h, counts = _shingle_hashes_batch(texts[lo : lo + batch_texts])
        out[lo : lo + len(counts)] = _one_permutation_minhash(h, counts, num_perm, seed) & _U64(NO_WORDS)
    return out


def _one_permutation_minhash(h: np.ndarray, counts: np.ndarray, num_perm: int, seed: int) -> np.ndarray:
    """(len(counts), num_perm) signatures of consecutive runs of `counts` shingle hashes."""
    key, probes = _oph_params(num_perm, seed)
    n = len(counts)
    with np.errstate(over="ignore"):
        v = fmix64(h ^ key)
        cell = np.repeat(np.arange(n, dtype=np.int64) * num_perm, counts)
        cell += ((v >> _U64(32)) * _U64(num_perm) >> _U64(32)).astype(np.int64)  # bin = high bits
    sig = np.full(n * num_perm, _MASK64, dtype=_U64)
    np.minimum.at(sig, cell, v)
    filled = np.bincount(cell, minlength=n * num_perm).reshape(n, num_perm) > 0
    sig = sig.reshape(n, num_perm)
    _densify(sig, filled, probes)
    return sig


# ---------------------------------------------------------------------------- index rows


def signatures_frame(
    article_ids: Sequence[str],
    published_at: Sequence[datetime | None] | pl.Series,
    texts: Sequence[str],
    num_perm: int = SIGNATURE_LENGTH,
    seed: int = 1,
) -> pl.DataFrame:
    """Index rows (MINHASH_INDEX schema): id, published_at in TIMEZONE (naive values are
    taken as local TIMEZONE time), signature array[u32, num_perm]."""
    if not len(article_ids) == len(published_at) == len(texts):
        raise ValueError("article_ids, published_at and texts must have the same length")
    if isinstance(published_at, pl.Series):
        tz = getattr(published_at.dtype, "time_zone", None)
        ts = published_at.cast(pl.Datetime("us", tz))
        ts = ts.dt.convert_time_zone(TIMEZONE) if tz else ts.dt.replace_time_zone(TIMEZONE)
    else:  # per value, so a list mixing naive and aware datetimes is still read right
        zone = ZoneInfo(TIMEZONE)
        local = [
            None if d is None else d.astimezone(zone) if d.tzinfo else d.replace(tzinfo=zone) for d in published_at
        ]
        ts = pl.Series(local, dtype=pl.Datetime("us", TIMEZONE))
    sig = minhash_signatures(texts, num_perm=num_perm, seed=seed)
    return pl.DataFrame(
        {
            C.article_id: pl.Series(list(article_ids), dtype=pl.String),
            C.published_at: ts,
            C.signature: pl.Series(sig, dtype=pl.Array(pl.UInt32, num_perm)),
        }
    ).cast(_INDEX_SCHEMA)  # type: ignore[arg-type]
