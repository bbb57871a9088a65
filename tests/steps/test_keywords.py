"""Tests (and examples of use) for tasks/steps/keywords.py: word counts and key phrases."""

from __future__ import annotations

import numpy as np
import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from tasks.steps import keywords
from tasks.steps.keywords import count_words, extract_keywords
from tests.paths import SEEDS


def seed(prefix: str) -> str:
    return next(p for p in sorted(SEEDS.glob("*.txt")) if p.name.startswith(prefix)).read_text(encoding="utf-8")


def test_keywords_deterministic_and_ranked() -> None:
    text = seed("001")
    kw = extract_keywords(text.splitlines()[0], text, k=5)
    assert kw == extract_keywords(text.splitlines()[0], text, k=5)
    assert len(kw) == 5 and kw[0] == "yangtze river delta"
    assert not any(w in {"the", "and", "of"} for k in kw for w in k.split())
    assert extract_keywords("", "", k=10) == []
    assert extract_keywords("a", "b", k=0) == []


def test_keywords_ties_alphabetical() -> None:
    assert extract_keywords("", "zebra apple mango", k=3) == ["apple", "mango", "zebra"]


# Few words, so phrases repeat; stopwords, short words, digit-first words, apostrophes,
# hyphens and punctuation between them exercise the breaks.
_KW_WORDS = ["river", "delta", "yangtze", "port", "Port", "the", "of", "x", "co-op", "covid-19", "3d", "it's"]
_KW_GAPS = [" ", " ", " ", ", ", ". ", "\n", " - ", "'s ", "’", "--", " 2024 ", "!"]
_KW_TEXTS = st.lists(st.tuples(st.sampled_from(_KW_WORDS), st.sampled_from(_KW_GAPS)), max_size=60).map(
    lambda parts: "".join(w + g for w, g in parts)
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, 5), _KW_TEXTS), max_size=6), st.integers(0, 4))
def test_keywords_packed_path_agrees_with_frames(rows: list[tuple[int, str]], k: int) -> None:
    # The numpy (packed key) n-gram count must give what the polars frames give, also for
    # ids out of order or repeated.
    ids = pl.Series("id", [i for i, _ in rows], dtype=pl.Int64)
    texts = pl.Series("t", [t for _, t in rows], dtype=pl.String)
    fast = keywords.keywords_frame(ids, texts, k)
    assert_frame_equal(fast, keywords.keywords_frame(ids, texts, k, packed=False))


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 4), st.sampled_from([0, 0, 1, 2, 3, 4, (1 << 20) + 1])), max_size=80),
    st.integers(1, 6),  # callers pass cap >= 60; polars' group_by().head(0) yields null rows
)
def test_top_ngrams_packed_agrees_with_frames(tokens: list[tuple[int, int]], cap: int) -> None:
    # Small caps exercise the head and the "one-off words can't make the cut" filter; the
    # 21-bit code makes the packed key too wide from 3 articles on (the frames take over).
    ids = pl.Series("id", [i for i, _ in tokens], dtype=pl.Int64)
    code = np.array([c for _, c in tokens], dtype=np.uint64)
    assert_frame_equal(keywords._top_ngrams(ids, code, cap), keywords._top_ngrams(ids, code, cap, packed=False))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.sampled_from([1, 2, 3, 6, 1 << 62])), max_size=40), st.integers(1, 5))
def test_best_first_ranks_by_score_then_row(rows: list[tuple[int, int]], cap: int) -> None:
    # A 2**62 score takes the lexsort branch (the packed int64 would overflow).
    rows = sorted(rows, key=lambda r: r[0])
    art = np.array([a for a, _ in rows], dtype=np.int64)
    score = np.array([s for _, s in rows], dtype=np.int64)
    ranked = sorted(range(len(rows)), key=lambda i: (rows[i][0], -rows[i][1], i))
    place = [sum(rows[j][0] == rows[i][0] for j in ranked[:n]) for n, i in enumerate(ranked)]
    assert keywords._best_first(art, score, cap).tolist() == [i for i, p in zip(ranked, place, strict=True) if p < cap]


def test_top_ngrams_packed_falls_back_when_keys_do_not_fit() -> None:
    code = np.array([(1 << 20) + 1, 1, 2], dtype=np.uint64)  # 21 bits a code: 63 bits, + 2 for the ids
    assert keywords._top_packed(pl.Series([0, 1, 2]), code, 5) is None
    assert keywords._top_packed(pl.Series([0, 0, 1]), code, 5) is not None


def test_count_words() -> None:
    assert count_words("") == 0
    assert count_words("Shanghai's high-quality development, 2024!") == 3 + 1
    assert count_words("陈吉宁在调研中表示,要Seize digital") == 10 + 2  # one word per Han character
