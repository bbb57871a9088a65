"""Exact and near-duplicate detection: pure functions, no Prefect, no I/O.

* exact duplicates: `article_id` = sha256 of the normalized title + body, so the same
  article seen twice (same or other file, CRLF/NBSP/NFD variants) gets one id;
* near duplicates: word 5-shingles -> MinHash signatures (persisted in the MINHASH_INDEX
  dataset across runs) -> banded LSH candidates (polars) -> verification with the exact
  Jaccard of the shingle sets -> greedy clusters around canonicals (every member within the
  threshold of its canonical, never linked through a third article).

Signatures are persisted and compared across runs, machines and library upgrades, so every
hash here is defined by hashlib + fixed 64-bit arithmetic: no Python `hash()`, no
`pl.Series.hash` (unstable across polars versions), no numpy RNG streams.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from functools import lru_cache
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl

from tasks.schema import (
    DUPLICATES,
    METHOD_MINHASH,
    MINHASH_INDEX,
    SIGNATURE_LENGTH,
    TIMEZONE,
    C,
)

__all__ = [
    "OTHER_ID",
    "article_id",
    "find_near_duplicates",
    "jaccard",
    "lsh_candidate_pairs",
    "lsh_params",
    "minhash_signatures",
    "normalize_text",
    "shingle_hashes",
    "shingles",
    "signatures_frame",
]

SHINGLE_K = 5
OTHER_ID = "other_id"  # second id column of lsh_candidate_pairs (internal, not persisted)
_U64 = np.uint64
_MASK64 = (1 << 64) - 1
_MASK32 = (1 << 32) - 1  # signature values are 32-bit (see minhash_signatures); all ones = no words

# ---------------------------------------------------------------------------- normalization

_NEWLINES = re.compile(r"\r\n|[\r\u2028\u2029\x85]")
# a run of 2+ whitespace chars, or one that is not a plain space (NBSP, U+3000, tab...);
# plain single spaces are left alone, which keeps the substitution cheap
_INLINE_WS = re.compile(r"[^\S\n]{2,}|[^\S \n]")
_BLANK_LINES = re.compile(r"\n{2,}")
_WORD = re.compile(r"\w+")
_WORD_PL = r"[\p{L}\p{N}_]+"  # polars (Rust regex) spelling of Python's \w, see _word_hashes


def normalize_text(text: str) -> str:
    """NFC; CRLF/CR/U+2028 -> LF; every other unicode space run -> one ' '; lines stripped;
    paragraphs (runs of non-blank lines) separated by exactly one blank line."""
    # Every regex pass below is guarded by a substring check that scans at C speed: on the
    # bench corpus the unguarded passes were ~40% of the batch's article ids.
    ascii_only = text.isascii()
    if not ascii_only:
        text = unicodedata.normalize("NFC", text)
    # line breaks first, then BOMs: "\r\ufeff\n" is two line breaks, not one CRLF
    if "\r" in text or (not ascii_only and ("\u2028" in text or "\u2029" in text or "\x85" in text)):
        text = _NEWLINES.sub("\n", text)
    if not ascii_only and "\ufeff" in text:
        text = text.replace("\ufeff", "")
    # _INLINE_WS never matches "\n", so a pass per line == one pass over the whole text. It
    # can only match where there is a double space or a blank other than " " (\t, NBSP...),
    # and every such blank is unprintable: str.isprintable (C speed) clears most lines
    # without a regex scan (measured on 13 MB of titles and bodies: 0.25 -> 0.16 s).
    text = "\n".join((_INLINE_WS.sub(" ", line) if "  " in line or not line.isprintable() else line).strip() for line in text.split("\n"))
    if "\n\n\n" in text:  # otherwise no run of 3+ newlines to fold
        text = _BLANK_LINES.sub("\n\n", text)
    return text.strip()


def article_id(title: str, body: str) -> str:
    """Stable content id: first 16 hex chars of sha256(normalize(title) + '\\n' + normalize(body))."""
    content = normalize_text(title) + "\n" + normalize_text(body)
    return hashlib.sha256(content.encode("utf-8")).hexdigest()[:16]


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
        h = self[word] = int.from_bytes(
            hashlib.blake2b(word.encode("utf-8"), digest_size=8).digest(), "little"
        )
        return h


_WORD_HASHES = _WordHashes()


def _fmix64(h: np.ndarray) -> np.ndarray:
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
            h = _fmix64(h ^ w)
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


def _shingle_sets(texts: Sequence[str], batch_texts: int = 1024) -> list[np.ndarray]:
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


def _jaccard_hashed(a: np.ndarray, b: np.ndarray) -> float:
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
        noise = _fmix64(cells ^ _U64(key ^ 0x9E3779B97F4A7C15))
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
    out = np.full((len(texts), num_perm), _MASK32, dtype=np.uint32)
    for lo in range(0, len(texts), batch_texts):
        h, counts = _shingle_hashes_batch(texts[lo : lo + batch_texts])
        out[lo : lo + len(counts)] = _one_permutation_minhash(h, counts, num_perm, seed) & _U64(_MASK32)
    return out


def _one_permutation_minhash(h: np.ndarray, counts: np.ndarray, num_perm: int, seed: int) -> np.ndarray:
    """(len(counts), num_perm) signatures of consecutive runs of `counts` shingle hashes."""
    key, probes = _oph_params(num_perm, seed)
    n = len(counts)
    with np.errstate(over="ignore"):
        v = _fmix64(h ^ key)
        cell = np.repeat(np.arange(n, dtype=np.int64) * num_perm, counts)
        cell += ((v >> _U64(32)) * _U64(num_perm) >> _U64(32)).astype(np.int64)  # bin = high bits
    sig = np.full(n * num_perm, _MASK64, dtype=_U64)
    np.minimum.at(sig, cell, v)
    filled = np.bincount(cell, minlength=n * num_perm).reshape(n, num_perm) > 0
    sig = sig.reshape(n, num_perm)
    _densify(sig, filled, probes)
    return sig


# ---------------------------------------------------------------------------- LSH

def _signature_matrix(signatures: pl.Series, num_perm: int) -> np.ndarray:
    """(n, num_perm) uint32 view of a signature column (MINHASH_INDEX: a fixed-size array,
    one buffer, read without a copy: the index is the largest thing the global step holds)."""
    return signatures.to_numpy().astype(np.uint32, copy=False).reshape(len(signatures), num_perm)


def lsh_params(threshold: float, num_perm: int = SIGNATURE_LENGTH, recall: float = 0.99) -> tuple[int, int]:
    """(bands, rows): the most selective band width r (fewest false candidates) whose
    probability of making a pair of Jaccard == threshold a candidate, 1-(1-t^r)^b with
    b = num_perm // r, is still >= `recall`. Recall-first because every candidate is verified
    exactly afterwards: a false candidate costs one Jaccard, a missed pair is lost.
    E.g. 128 perms: t=0.9 -> (12, 10), t=0.8 -> (21, 6), t=0.5 -> (42, 3), t=0.3 -> (64, 2)."""
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    best = (num_perm, 1)
    for r in range(1, num_perm + 1):
        b = num_perm // r
        if 1.0 - (1.0 - threshold**r) ** b >= recall:
            best = (b, r)
    return best


def _band_keys(signatures: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """(n, bands) uint64: each band's r values folded into one 64-bit key (a collision only
    adds a candidate, which verification then rejects)."""
    n = signatures.shape[0]
    keys = np.full((n, bands), rows, dtype=_U64)
    sig = signatures[:, : bands * rows].reshape(n, bands, rows)
    with np.errstate(over="ignore"):
        for t in range(rows):
            keys = _fmix64(keys ^ sig[:, :, t])
    return keys


# A candidate whose signatures agree on fewer than (threshold - slack) of their positions is
# dropped before the exact check. Each position agrees with probability = the Jaccard J, so
# for J >= threshold the agreement falls below that only ~4.3 standard deviations out at 128
# positions (J = 0.8: mean 0.80, sd 0.035; a pair at exactly J = 0.8 is lost with probability
# ~1e-5, one with J = 0.85 ~1e-9). Why: LSH tuned for recall 0.99 also pairs many J ~ 0.2-0.6
# articles, and their count grows with the square of the corpus. Measured on the 1 GB bench
# (328,815 articles): a slack of 0.25 kept 72,511 pairs over 60,989 articles, whose texts
# the exact check must load; 0.15 keeps 15,242.
ESTIMATE_SLACK = 0.15


def _agreement(sig: np.ndarray, rows: np.ndarray, other: np.ndarray, chunk: int = 65_536) -> np.ndarray:
    """Share of signature positions on which each (rows[i], other[i]) pair agrees."""
    out = np.empty(len(rows), dtype=np.float64)
    for lo in range(0, len(rows), chunk):  # bounded memory: chunk x num_perm values at once
        hi = lo + chunk
        out[lo:hi] = (sig[rows[lo:hi]] == sig[other[lo:hi]]).mean(axis=1)
    return out


def lsh_candidate_pairs(index: pl.DataFrame, threshold: float, num_perm: int = SIGNATURE_LENGTH) -> pl.DataFrame:
    """Unique (article_id, other_id) pairs, article_id < other_id, that share at least one
    LSH band and whose signatures agree on at least threshold - ESTIMATE_SLACK of their
    positions. Band keys in numpy, bucketing and pairing with polars joins (cost ~ sum of
    bucket sizes squared, not n^2)."""
    bands, rows = lsh_params(threshold, num_perm)
    other = OTHER_ID
    idx = index.select(C.article_id, C.signature)
    if idx[C.article_id].is_duplicated().any():  # (a copy of every signature: only when needed)
        idx = idx.unique(C.article_id)
    if idx.height < 2:
        return pl.DataFrame(schema={C.article_id: pl.String, other: pl.String})
    sig = _signature_matrix(idx[C.signature], num_perm)
    live = np.flatnonzero(~(sig == np.uint32(_MASK32)).all(axis=1))  # wordless texts share every band
    keys = _band_keys(sig[live] if len(live) < len(sig) else sig, bands, rows)
    rows_live = live.astype(np.uint32)
    floor = threshold - ESTIMATE_SLACK
    found = []
    # One band at a time: pairs from a big bucket are quadratic in its size, so only one
    # band's pairs (already cut by signature agreement) are ever in memory.
    for band in range(bands):
        members = pl.DataFrame({"row": rows_live, "key": keys[:, band]}).filter(pl.len().over("key") > 1)
        if not members.height:
            continue
        pairs = (
            members.join(members.rename({"row": "other"}), on="key")
            .filter(pl.col("row") < pl.col("other"))
            .select("row", "other")
        )
        agree = _agreement(sig, pairs["row"].to_numpy().astype(np.int64), pairs["other"].to_numpy().astype(np.int64))
        found.append(pairs.filter(pl.Series(agree >= floor)))
    if not found:
        return pl.DataFrame(schema={C.article_id: pl.String, other: pl.String})
    pairs = pl.concat(found).unique()
    ids = idx[C.article_id]
    return (
        pl.DataFrame({C.article_id: ids.gather(pairs["row"]), other: ids.gather(pairs["other"])})
        .select(pl.min_horizontal(C.article_id, other).alias(C.article_id), pl.max_horizontal(C.article_id, other).alias(other))
        .sort(C.article_id, other)
    )


# ---------------------------------------------------------------------------- clusters

def _clusters_around_canonicals(edges: Iterable[tuple[str, str]], canonical_order: Sequence[str]) -> dict[str, str]:
    """member -> canonical. Walk the linked articles in canonical order (earliest first): an
    article not yet taken becomes a canonical and takes every untaken article it is linked to.
    So each member is itself within the threshold of its canonical; connected components would
    also chain A~B~C into one cluster with A-C below it (51 such pairs at 1 GB). An article
    linked only to members of earlier clusters stays on its own. Depends only on the edge set
    and the order, not on edge order."""
    neighbours: dict[str, list[str]] = {}
    for u, v in edges:
        neighbours.setdefault(u, []).append(v)
        neighbours.setdefault(v, []).append(u)
    canonical_of: dict[str, str] = {}
    for node in canonical_order:
        if node in canonical_of or node not in neighbours:
            continue
        canonical_of[node] = node
        for other in neighbours[node]:
            canonical_of.setdefault(other, node)
    return {m: c for m, c in canonical_of.items() if m != c}


_DUP_SCHEMA = pl.from_arrow(DUPLICATES.schema.empty_table()).schema
_INDEX_SCHEMA = pl.from_arrow(MINHASH_INDEX.schema.empty_table()).schema


VERIFY_CHUNK = 16_384  # candidate texts loaded at once (~50 MB of text)


def _candidate_shingle_sets(
    needed: list[str], texts: Mapping[str, str] | Callable[[list[str]], Mapping[str, str]]
) -> dict[str, np.ndarray]:
    """article_id -> sorted shingle hashes, loading `needed` texts one chunk at a time."""
    out: dict[str, np.ndarray] = {}
    for lo in range(0, len(needed), VERIFY_CHUNK):
        chunk = needed[lo : lo + VERIFY_CHUNK]
        got = texts(chunk) if callable(texts) else texts
        missing = [i for i in chunk if i not in got]
        if missing:
            raise KeyError(f"no text for {len(missing)} candidate article(s), e.g. {missing[:3]}")
        out.update(zip(chunk, _shingle_sets([got[i] for i in chunk]), strict=True))
    return out


def find_near_duplicates(
    index: pl.DataFrame,
    texts: Mapping[str, str] | Callable[[list[str]], Mapping[str, str]],
    threshold: float = 0.8,
    num_perm: int = SIGNATURE_LENGTH,
) -> pl.DataFrame:
    """Near-duplicate links over the whole index (DUPLICATES schema, sorted).

    `index`: C.article_id, C.published_at (tz-aware, nullable), C.signature -- every article
    ever ingested. `texts`: article_id -> text (a mapping, or a loader called with sorted
    chunks of the candidate ids, so the caller fetches only those, and only one chunk's
    texts are held at a time: each is reduced to its shingle hashes at once). Pairs are LSH candidates whose
    exact shingle Jaccard is >= threshold. Clusters form around canonicals taken in canonical
    order -- earliest published_at (nulls last), then smallest id: each canonical takes the
    linked articles no earlier canonical took (`_clusters_around_canonicals`). One row per
    member; `similarity`, the exact Jaccard between the member and its canonical, is always
    >= `threshold` (never a link through a third article).
    Depends only on the set of index rows, not on their order.
    """
    cands = lsh_candidate_pairs(index, threshold, num_perm)
    if cands.height == 0:
        return pl.DataFrame(schema=_DUP_SCHEMA)
    a_ids, b_ids = cands.to_series(0).to_list(), cands.to_series(1).to_list()
    sh = _candidate_shingle_sets(sorted(set(a_ids) | set(b_ids)), texts)

    edges = [(u, v) for u, v in zip(a_ids, b_ids) if _jaccard_hashed(sh[u], sh[v]) >= threshold]
    if not edges:
        return pl.DataFrame(schema=_DUP_SCHEMA)
    linked = pl.DataFrame({C.article_id: sorted({x for e in edges for x in e})})
    in_canonical_order = (
        linked.join(
            index.select(C.article_id, C.published_at)
            .sort(C.article_id, C.published_at, nulls_last=True)
            .unique(C.article_id, keep="first"),
            on=C.article_id,
            how="left",
        )
        .sort(C.published_at, C.article_id, nulls_last=True)  # canonical rule
        .get_column(C.article_id)
        .to_list()
    )
    canonical_of = _clusters_around_canonicals(edges, in_canonical_order)
    members = pl.DataFrame(
        {C.article_id: list(canonical_of), C.duplicate_of: list(canonical_of.values())},
        schema={C.article_id: pl.String, C.duplicate_of: pl.String},
    )
    out = members.select(
        C.article_id,
        C.duplicate_of,
        pl.lit(METHOD_MINHASH).alias(C.method),
        pl.Series(
            C.similarity,
            [_jaccard_hashed(sh[m], sh[c]) for m, c in zip(members[C.article_id], members[C.duplicate_of])],
            dtype=pl.Float64,
        ),
    )
    return out.sort(C.duplicate_of, C.article_id).cast(_DUP_SCHEMA)  # type: ignore[arg-type]


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
            None if d is None else d.astimezone(zone) if d.tzinfo else d.replace(tzinfo=zone)
            for d in published_at
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
