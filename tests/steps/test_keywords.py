"""Tests (and examples of use) for tasks/steps/keywords.py: word counts and key phrases."""

from __future__ import annotations

import numpy as np
import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from bench.entities import SAMPLE
from tasks.steps import keywords
from tasks.steps.entities import find_people
from tasks.steps.keywords import count_words, extract_keywords
from tasks.steps.lexicons import word_list
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
# Number words, a modifier and repeated four-word runs exercise the phrase edges and 4-grams.
_KW_WORDS = ["river", "delta", "yangtze", "port", "Port", "the", "of", "x", "co-op", "covid-19", "3d", "it's"]
_KW_WORDS += ["new", "two", "sessions", "new quality productive forces", "national two sessions", "Wu Qing"]
_KW_GAPS = [" ", " ", " ", ", ", ". ", "\n", " - ", "'s ", "’", "--", " 2024 ", "!"]
_KW_TEXTS = st.lists(st.tuples(st.sampled_from(_KW_WORDS), st.sampled_from(_KW_GAPS)), max_size=60).map(
    lambda parts: "".join(w + g for w, g in parts)
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, 5), _KW_TEXTS), max_size=6), st.integers(0, 4))
def test_keywords_packed_path_agrees_with_frames(rows: list[tuple[int, str]], k: int) -> None:
    # The numpy (packed key) n-gram count must give what the polars frames give, also for
    # ids out of order or repeated.
    ids = pl.Series("id", [i for i, _ in rows], dtype=pl.Int64)
    texts = pl.Series("t", [t for _, t in rows], dtype=pl.String)
    fast = keywords.keywords_frame(ids, texts, k)
    assert_frame_equal(fast, keywords.keywords_frame(ids, texts, k, packed=False))
    people = pl.Series([find_people(t) for t in texts], dtype=pl.List(pl.String))
    assert_frame_equal(fast, keywords.keywords_frame(ids, texts, k, people))  # the same people, passed in


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 4), st.sampled_from([0, 0, 1, 1, 2, 2, 3, 4, (1 << 16) - 2])), max_size=120),
    st.integers(1, 6),  # callers pass cap >= 60; polars' group_by().head(0) yields null rows
    st.sets(st.integers(1, 4)),
)
def test_top_ngrams_packed_agrees_with_frames(tokens: list[tuple[int, int]], cap: int, edge_words: set[int]) -> None:
    # Small caps exercise the head and the "one-off words can't make the cut" filter; few
    # codes make 4-grams repeat; the widest code fills a slot; edge words may not start/end a phrase.
    ids = pl.Series("id", [i for i, _ in tokens], dtype=pl.Int64)
    code = np.array([c for _, c in tokens], dtype=np.uint64)
    no_start = np.zeros(1 << 16, dtype=bool)
    no_start[list(edge_words)] = True
    no_end = no_start.copy()
    no_end[3] = True
    fast = keywords._top_ngrams(ids, code, cap, no_start, no_end)
    assert_frame_equal(fast, keywords._top_ngrams(ids, code, cap, no_start, no_end, packed=False))


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
    # 16 bits a code: three codes and the rank of 2**17 articles take 65 bits.
    n = (1 << 16) + 1
    code = np.full(n, (1 << 16) - 2, dtype=np.uint64)
    assert keywords._top_packed(pl.Series(range(n)), code, 5, *_no_edges()) is None
    assert keywords._top_packed(pl.Series(range(n - 1)), code[1:], 5, *_no_edges()) is not None


def _no_edges() -> tuple[np.ndarray, np.ndarray]:
    return np.zeros(1 << 16, dtype=bool), np.zeros(1 << 16, dtype=bool)


def test_a_batch_with_too_many_distinct_words_is_halved_to_the_same_keywords() -> None:
    # 70,000 distinct words in four articles do not fit 16-bit codes: each half is ranked
    # alone, which gives every article the keywords it gets on its own.
    words = [f"w{i:05d}x" for i in range(70_000)]
    texts = [" ".join(words[i::4]) + " river delta. river delta." for i in range(4)]
    batch = keywords.keywords_frame(
        pl.Series(range(4)), pl.Series(texts), 3, pl.Series([[]] * 4, dtype=pl.List(pl.String))
    )
    alone = [extract_keywords("", t, 3, people=[]) for t in texts]
    assert batch["keywords"].to_list() == alone
    assert all(kw[0] == "river delta" for kw in alone)


# ------------------------------------------------------------------ no noise


def _sample_articles() -> list[tuple[str, str]]:
    """(title, body) of the seed articles of the labelled entity sample."""
    import json

    rows = [json.loads(x) for x in SAMPLE.read_text(encoding="utf-8").splitlines()]
    return [tuple(r["text"].split("\n\n", 1)) for r in rows if r["source"].startswith("seed")]


def test_no_number_words_stop_words_or_name_syllables_on_the_seed_articles() -> None:
    numbers, modifiers = set(word_list("kw_numbers.txt")), set(word_list("kw_modifiers.txt"))
    kw_stop = word_list("kw_stop.txt")
    stop = set(word_list("stopwords.txt")) | set(kw_stop[: kw_stop.index("[ly-words]")])
    articles = _sample_articles()
    assert len(articles) == 20
    for title, body in articles:
        kw = extract_keywords(title, body)
        assert kw == extract_keywords(title, body) and len(kw) == len(set(kw))
        names = {w.lower() for p in find_people(f"{title}\n\n{body}") for w in p.split()}
        for phrase in kw:
            words = phrase.split()
            assert 1 <= len(words) <= 4 and phrase == phrase.lower()
            assert words[0] not in numbers and words[-1] not in numbers | modifiers, phrase
            assert not (set(words) & names), (phrase, names)  # "qing" of Wu Qing, "chen jining"
            assert phrase not in stop and not (len(words) == 1 and words[0] in modifiers)


def test_key_phrases_where_the_text_has_them() -> None:
    # Seed 003 repeats "National Two Sessions" (7x) and "new productive forces" (8x).
    title, body = next(a for a in _sample_articles() if a[0].startswith('"Adapt measures'))
    kw = extract_keywords(title, body)
    assert "national two sessions" in kw and "new productive forces" in kw
    assert "chen jining" not in kw and "sessions" not in kw and "two" not in kw
    text = (
        "Develop new quality productive forces. New quality productive forces lead. "
        "City leaders Wu Qing and Shu Qing attended. Over the past five years, half of the funds were recovered; "
        "the five funds were recovered."
    )
    kw = extract_keywords("", text)
    assert kw[0] == "new quality productive forces"  # a 4-gram: 2 x 4 outranks every part
    for noise in ("qing", "wu", "shu", "five", "half", "past", "past five", "five funds", "new", "quality productive"):
        assert noise not in kw
    assert "funds" in kw and "recovered" in kw


def test_adverbs_in_ly_are_dropped_but_not_adjectives_and_nouns_in_ly() -> None:
    text = (
        "Elderly care services actively expand. Elderly care services actively grow. "
        "The weekly supply report was firmly backed; the weekly supply report was firmly kept."
    )
    kw = extract_keywords("", text)
    assert "elderly care services" in kw and "weekly supply report" in kw
    assert not any(w in {"actively", "firmly"} for phrase in kw for w in phrase.split())


def test_count_words() -> None:
    assert count_words("") == 0
    assert count_words("Shanghai's high-quality development, 2024!") == 3 + 1
    assert count_words("陈吉宁在调研中表示,要Seize digital") == 10 + 2  # one word per Han character
