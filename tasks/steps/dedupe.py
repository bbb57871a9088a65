"""The dedupe step: near duplicates over every article ever ingested (pure, no I/O).

Exact duplicates need no search: an article's id is its content key (tasks/steps/identity.py),
so the same article seen twice has one id. Near duplicates: MinHash signatures (from
tasks/steps/minhash.py, persisted in the MINHASH_INDEX dataset across runs) -> banded LSH
candidates (polars) -> verification with the exact Jaccard of the shingle sets -> greedy
clusters around canonicals (every member within the threshold of its canonical, never
linked through a third article).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

import numpy as np
import polars as pl

from tasks.schema import DUPLICATES, KIND_MAIN, METHOD_MINHASH, SIGNATURE_LENGTH, C, empty_frame
from tasks.steps.minhash import NO_WORDS, fmix64, jaccard_hashed, shingle_sets

OTHER_ID = "other_id"  # second id column of lsh_candidate_pairs (internal, not persisted)
_U64 = np.uint64


# ---------------------------------------------------------------------------- exact


def one_per_article(rows: pl.DataFrame, order: list[str]) -> pl.DataFrame:
    """One row per article_id (exact duplicates collapse): a `main` occurrence wins over a
    `related` one (it carries the date), then the first in `order`. The rule for a batch's
    article rows and for the run's (tasks/pipeline/run.py)."""
    return rows.sort([pl.col(C.kind) != KIND_MAIN, *order]).unique(C.article_id, keep="first", maintain_order=True)


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
            keys = fmix64(keys ^ sig[:, :, t])
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
    live = np.flatnonzero(~(sig == np.uint32(NO_WORDS)).all(axis=1))  # wordless texts share every band
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
        .select(
            pl.min_horizontal(C.article_id, other).alias(C.article_id),
            pl.max_horizontal(C.article_id, other).alias(other),
        )
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


_DUP_SCHEMA = empty_frame(DUPLICATES.schema).schema


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
        out.update(zip(chunk, shingle_sets([got[i] for i in chunk]), strict=True))
    return out


def find_near_duplicates(
    index: pl.DataFrame,
    texts: Mapping[str, str] | Callable[[list[str]], Mapping[str, str]],
    threshold: float,
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

    edges = [(u, v) for u, v in zip(a_ids, b_ids, strict=True) if jaccard_hashed(sh[u], sh[v]) >= threshold]
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
            [jaccard_hashed(sh[m], sh[c]) for m, c in zip(members[C.article_id], members[C.duplicate_of], strict=True)],
            dtype=pl.Float64,
        ),
    )
    return out.sort(C.duplicate_of, C.article_id).cast(_DUP_SCHEMA)  # type: ignore[arg-type]
