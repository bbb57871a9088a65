"""Tests (and examples of use) for tasks/dedupe.py: exact ids, MinHash/LSH near duplicates."""

from __future__ import annotations

import itertools
import json
import re
import subprocess
import sys
import unicodedata
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from tasks.steps.dedupe import (
    OTHER_ID,
    _band_keys,
    _one_permutation_minhash,
    _shingle_hashes_batch,
    _word_hashes,
    _words,
    article_id,
    find_near_duplicates,
    jaccard,
    lsh_candidate_pairs,
    lsh_params,
    minhash_signatures,
    normalize_text,
    shingle_hashes,
    shingles,
    signatures_frame,
)
from tasks.schema import DUPLICATES, METHOD_MINHASH, MINHASH_INDEX, TIMEZONE, C

ROOT = Path(__file__).resolve().parents[1]
SEEDS = sorted((ROOT / "seeds").glob("*.txt"))
SHARED = ROOT.parent / "shared"
WMT = SHARED / "eval" / "wmt23-zhen-mqm" / "zhen_same_doc_10_systems.derived.jsonl"
TZ = ZoneInfo(TIMEZONE)
T0 = datetime(2024, 5, 1, 9, 0, tzinfo=TZ)


# ------------------------------------------------------------------------------ helpers

def parse_seed(text: str) -> tuple[tuple[str, str], list[tuple[str, str]]]:
    """(main, related): a related article is a line printed twice in a row (its title)
    followed by its next non-empty paragraph; the main article is line 0 + the rest up to
    the first related block."""
    lines = text.split("\n")
    doubled = [i for i in range(1, len(lines)) if lines[i].strip() and lines[i] == lines[i - 1]]
    related = [(lines[i], next(x for x in lines[i + 1 :] if x.strip())) for i in doubled]
    end = doubled[0] - 1 if doubled else len(lines)
    return (lines[0], "\n".join(lines[1:end])), related


def seed_articles() -> list[tuple[tuple[str, str], list[tuple[str, str]]]]:
    return [parse_seed(p.read_text(encoding="utf-8")) for p in SEEDS]


def main_text(i: int) -> str:
    title, body = seed_articles()[i][0]
    return title + "\n" + body


def change_words(text: str, positions: list[int], word: str = "zzchanged") -> str:
    words = text.split()
    for p in positions:
        words[p % len(words)] = word
    return " ".join(words)


def index_of(rows: list[tuple[str, datetime | None, str]]) -> tuple[pl.DataFrame, dict[str, str]]:
    """(index frame, texts mapping) from (id, published_at, text) rows."""
    ids, ts, texts = (list(x) for x in zip(*rows)) if rows else ([], [], [])
    return signatures_frame(ids, ts, texts), dict(zip(ids, texts))


def pl_schema(spec_schema) -> pl.Schema:
    return pl.from_arrow(spec_schema.empty_table()).schema


# ------------------------------------------------------------------------------ normalize / ids

def _normalize_reference(text: str) -> str:
    """The rule normalize_text implements, spelled out without its fast paths."""
    text = unicodedata.normalize("NFC", text)
    text = re.sub(r"\r\n|[\r\u2028\u2029\x85]", "\n", text).replace("\ufeff", "")
    text = re.sub(r"[^\S\n]+", " ", text)
    text = "\n".join(line.strip() for line in text.split("\n"))
    return re.sub(r"\n{2,}", "\n\n", text).strip()


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(alphabet=st.sampled_from(list("ab é\u0301\n\r\t\xa0\u3000\u2028\u2029\x85\ufeff\x1c汉\u200b\x07")), max_size=60))
def test_normalize_text_fast_paths_equal_the_plain_rule(raw: str) -> None:
    assert normalize_text(raw) == _normalize_reference(raw)


def test_normalize_text() -> None:
    raw = "\ufeff  Title\u00a0\u00a0here \r\n\r\n\r\n\tPara\u3000one\rline two  \n\n\n\nPara two\u2028 "
    assert normalize_text(raw) == "Title here\n\nPara one\nline two\n\nPara two"
    assert normalize_text(normalize_text(raw)) == normalize_text(raw)


def test_article_id_invariants() -> None:
    title, body = "Café opens in Pudong", "First paragraph here.\n\nSecond paragraph, here."
    base = article_id(title, body)
    assert len(base) == 16 and int(base, 16) >= 0
    assert article_id(title, body.replace("\n", "\r\n")) == base  # CRLF
    assert article_id(title, body.replace("\n", "\r")) == base  # old Mac CR
    assert article_id(title.replace(" ", "\u00a0"), body.replace(" ", "\u00a0")) == base  # NBSP
    assert article_id(unicodedata.normalize("NFD", title), body) == base  # NFD é
    assert article_id(title + "  ", "  " + body + "\n\n\n") == base
    assert article_id(title, body.replace("here.", "there.")) != base
    assert article_id("Other title", body) != base
    assert article_id("Title", "Body text.") == "368eef8bdb63cb87"  # pinned: ids are persisted


def test_seed_related_articles_share_ids() -> None:
    seeds = {p.name[:3]: parse_seed(p.read_text(encoding="utf-8")) for p in SEEDS}
    rel1 = [article_id(t, b) for t, b in seeds["001"][1]]
    rel2 = [article_id(t, b) for t, b in seeds["002"][1]]
    assert len(rel1) == len(rel2) == 5 and rel1 == rel2

    related = [article_id(t, b) for _, rel in seeds.values() for t, b in rel]
    mains = [article_id(t, b) for (t, b), _ in seeds.values()]
    assert (len(related), len(set(related))) == (20, 15)
    assert (len(mains + related), len(set(mains + related))) == (25, 20)

    # the same file with CRLF line endings yields the same ids
    crlf = (ROOT / "seeds").glob("001_*.txt").__next__().read_text(encoding="utf-8")
    _, rel_crlf = parse_seed(crlf.replace("\n", "\r\n"))
    assert [article_id(t, b) for t, b in rel_crlf] == rel1


# ------------------------------------------------------------------------------ shingles / minhash

def test_shingles() -> None:
    assert shingles("One, two; THREE") == {"one two three"}  # < k words: one shingle
    assert shingles("a b c d e f g") == {"a b c d e", "b c d e f", "c d e f g"}
    assert shingles("¡¿ — !") == set()
    assert shingles("Ａ\u00a0b  c\r\nd e") == shingles("Ａ b c d e")
    assert jaccard(set(), set()) == 0.0


def test_signatures_shape_dtype_and_pinned_values() -> None:
    sig = minhash_signatures(["The quick brown fox jumps over the lazy dog near Shanghai.", "Hi", ""])
    assert sig.shape == (3, 128) and sig.dtype == np.uint32
    # pinned: signatures are persisted in data/_index and compared across runs and upgrades
    # (one-permutation hashing: 8 shingles fill few of 128 bins, the rest are densified;
    # each bin keeps the low 32 bits of its 64-bit minimum)
    assert sig[:2, :3].tolist() == [[1409747026, 153661116, 153661116], [3156188636, 3156188636, 3156188636]]
    assert len(set(sig[1].tolist())) == 1  # one shingle: every bin copies it
    assert (sig[2] == np.iinfo(np.uint32).max).all()  # no words -> sentinel, ignored by LSH
    assert minhash_signatures(["x y z"], num_perm=16, seed=2).shape == (1, 16)
    assert not np.array_equal(minhash_signatures(["x y z"], seed=2)[0], minhash_signatures(["x y z"])[0])


def test_shingle_hashes_pinned_and_batch_consistent() -> None:
    # pinned: the shingle hash (blake2b words folded through fmix64) predates the OPH scheme
    assert shingle_hashes("a b c d e f").tolist() == [3625805760673225577, 994427232969790658]
    texts = ["", "Hi there", "One two three four five six", "¡¿ — !", "x " * 7, "Ａ\u00a0b  c\r\nd e"]
    h, counts = _shingle_hashes_batch(texts)
    assert counts.tolist() == [len(shingles(t)) if len(_words(t)) < 5 else len(_words(t)) - 4 for t in texts]
    assert np.array_equal(h, np.concatenate([shingle_hashes(t) for t in texts]))


# code points assigned in Python's Unicode database (polars' newer tables may see more letters)
_ASSIGNED = st.characters(exclude_categories=("Cn", "Cs"))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(_ASSIGNED, min_size=0, max_size=60) | st.sampled_from(["ΣΑΣ ΟΔΟΣ", "İstanbul x²y", "a b c"]), min_size=1, max_size=5))
def test_polars_tokens_match_python_words(texts: list[str]) -> None:
    # the batch tokenizer (polars) must read the same words as shingles() (Python re)
    expected = [len(_words(t)) for t in texts]
    _, lens = _word_hashes(texts)
    assert lens.tolist() == expected
    h, _ = _shingle_hashes_batch(texts)
    by_text = [len(set(shingle_hashes(t).tolist())) for t in texts]
    assert by_text == [len(shingles(t)) for t in texts]
    assert len(h) == sum(max(n - 4, min(n, 1)) for n in expected)


def _jaccard_pairs(size: int, j: float, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, float]:
    """n pairs of random shingle-hash sets of `size` each with Jaccard ~j (returned exactly)."""
    m = round(2 * size * j / (1 + j))
    d = size - m
    x = rng.integers(0, 2**64 - 1, size=(n, m + 2 * d), dtype=np.uint64, endpoint=False)
    pairs = [np.concatenate([r[: m + d], r[:m], r[m + d :]]) for r in x]
    return np.concatenate(pairs), np.tile([m + d, m + d], n), m / (m + 2 * d)


@pytest.mark.parametrize("size", [18, 45, 297, 1503])  # 9d: Jaccard exactly 0.8
def test_one_permutation_minhash_is_unbiased_and_lsh_recall_holds(size: int) -> None:
    # densified one-permutation hashing: each bin agrees with probability = Jaccard, and the
    # banding of lsh_params keeps recall >= 0.99 at the threshold, small texts included
    rng = np.random.default_rng(size)
    h, counts, j = _jaccard_pairs(size, 0.8, 3000, rng)
    sig = _one_permutation_minhash(h, counts, 128, 1)
    assert abs((sig[0::2] == sig[1::2]).mean() - j) < 0.01
    bands, rows = lsh_params(0.8)
    keys = _band_keys(sig, bands, rows)
    recall = (keys[0::2] == keys[1::2]).any(axis=1).mean()
    assert j >= 0.8 and recall >= 0.99


def test_minhash_estimates_jaccard() -> None:
    base = main_text(0)
    texts = [base] + [change_words(base, list(range(7, 7 + 40 * n, 40))) for n in range(1, 12)]
    sig = minhash_signatures(texts)
    for i in range(1, len(texts)):
        exact = jaccard(shingles(texts[0]), shingles(texts[i]))
        assert abs((sig[0] == sig[i]).mean() - exact) < 0.15  # ~4 sigma at 128 perms


@settings(max_examples=5, deadline=None)
@given(st.lists(st.text(min_size=0, max_size=200), min_size=1, max_size=6))
def test_signatures_deterministic_in_fresh_process(texts: list[str]) -> None:
    code = (
        "import json, sys; from tasks.steps.dedupe import minhash_signatures; "
        "print(json.dumps(minhash_signatures(json.loads(sys.stdin.read())).tolist()))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], input=json.dumps(texts), capture_output=True,
        text=True, cwd=ROOT, check=True, env={"PYTHONHASHSEED": "random", "PATH": ""},
    )
    assert json.loads(out.stdout) == minhash_signatures(texts).tolist()


def test_signatures_frame_schema() -> None:
    frame = signatures_frame(["a", "b", "c"], [T0, None, datetime(2024, 1, 1, 8)], ["x y", "", "z"])
    assert frame.schema == pl_schema(MINHASH_INDEX.schema)
    frame.to_arrow().cast(MINHASH_INDEX.schema)  # nullability holds too
    # naive datetimes are local (TIMEZONE) time
    assert frame[C.published_at][2] == datetime(2024, 1, 1, 8, tzinfo=TZ)
    assert signatures_frame([], [], []).schema == pl_schema(MINHASH_INDEX.schema)


# ------------------------------------------------------------------------------ LSH

def test_lsh_params_and_pairs() -> None:
    assert lsh_params(0.8) == (21, 6) and lsh_params(0.5) == (42, 3) and lsh_params(0.3) == (64, 2)
    for t in (0.3, 0.5, 0.8, 0.9):
        b, r = lsh_params(t)
        assert b * r <= 128 and 1 - (1 - t**r) ** b >= 0.99

    a = main_text(0)
    idx, _ = index_of(
        [("b1", None, a), ("a1", None, change_words(a, [3])), ("c1", None, main_text(3)), ("e1", None, ""), ("e2", None, "")]
    )
    pairs = lsh_candidate_pairs(idx, 0.8)
    assert pairs.columns == [C.article_id, OTHER_ID]
    assert pairs.rows() == [("a1", "b1")]  # ordered, unique; wordless texts never pair


# ------------------------------------------------------------------------------ find_near_duplicates

def test_near_duplicate_linked_to_earlier_one() -> None:
    a = main_text(0)
    j = jaccard(shingles(a), shingles(change_words(a, [10, 100, 200])))
    assert 0.8 <= j < 1.0
    old, texts = index_of([("ff00", T0, a), ("0003", T0, main_text(3))])
    new, new_texts = index_of([("0001", T0 + timedelta(days=30), change_words(a, [10, 100, 200]))])
    # next month's file is deduplicated against the persisted index
    out = find_near_duplicates(pl.concat([old, new]), {**texts, **new_texts})
    assert out.rows() == [("0001", "ff00", METHOD_MINHASH, pytest.approx(j))]
    assert out.schema == pl_schema(DUPLICATES.schema)
    out.to_arrow().cast(DUPLICATES.schema)

    # threshold just above the real similarity: no link; just below: linked
    both, all_texts = pl.concat([old, new]), {**texts, **new_texts}
    assert find_near_duplicates(both, all_texts, threshold=j + 1e-9).is_empty()
    assert find_near_duplicates(both, all_texts, threshold=j).height == 1
    assert find_near_duplicates(old, texts).schema == pl_schema(DUPLICATES.schema)


def test_canonical_rule() -> None:
    a = main_text(1)
    rows = [
        ("bbbb", T0 + timedelta(hours=1), a),
        ("cccc", None, change_words(a, [5])),
        ("aaaa", T0 + timedelta(hours=1), change_words(a, [50])),
        ("dddd", T0 + timedelta(hours=2), change_words(a, [90])),
    ]
    idx, texts = index_of(rows)
    out = find_near_duplicates(idx, texts)
    # earliest published_at wins, ties -> smallest id; nulls are last
    assert out[C.article_id].to_list() == ["bbbb", "cccc", "dddd"]
    assert set(out[C.duplicate_of]) == {"aaaa"}
    # all dates null: smallest id
    idx_null, _ = index_of([(i, None, t) for i, _, t in rows])
    assert set(find_near_duplicates(idx_null, texts)[C.duplicate_of]) == {"aaaa"}
    # a null date never beats a real one
    idx2, texts2 = index_of([("0000", None, a), ("ffff", T0, change_words(a, [5]))])
    assert find_near_duplicates(idx2, texts2).rows()[0][:2] == ("0000", "ffff")


def test_no_link_through_a_third_article() -> None:
    # a~b and b~c, but a-c below the threshold: b joins a's cluster (a is earlier), and c,
    # linked only to a member of that cluster, stays on its own instead of riding b's link
    a = main_text(4)
    n = len(a.split())
    b = change_words(a, list(range(0, n // 2, n // 12)))  # changes in the first half
    c = change_words(b, list(range(n // 2, n, n // 12)))  # and in the second half
    ja_b, jb_c, ja_c = (jaccard(shingles(x), shingles(y)) for x, y in ((a, b), (b, c), (a, c)))
    thr = min(ja_b, jb_c) - 0.01
    assert ja_c < thr
    idx, texts = index_of([("a", T0, a), ("b", T0 + timedelta(1), b), ("c", T0 + timedelta(2), c)])
    out = find_near_duplicates(idx, texts, threshold=thr)
    assert out.select(C.article_id, C.duplicate_of).rows() == [("b", "a")]
    assert out[C.similarity].to_list() == pytest.approx([ja_b])
    # with c the earliest, c is a canonical and takes b; a, linked only to b, stays alone
    idx2, _ = index_of([("a", T0 + timedelta(2), a), ("b", T0 + timedelta(1), b), ("c", T0, c)])
    assert find_near_duplicates(idx2, texts, threshold=thr).select(C.article_id, C.duplicate_of).rows() == [("b", "c")]


def test_texts_loader_receives_only_candidates() -> None:
    a = main_text(2)
    rows = [("x1", T0, a), ("x2", T0, change_words(a, [7]))] + [
        (f"u{i}", T0, main_text(i)) for i in (0, 1, 3, 4)
    ]
    idx, texts = index_of(rows)
    asked: list[list[str]] = []

    def load(ids: list[str]) -> dict[str, str]:
        asked.append(ids)
        return {i: texts[i] for i in ids}

    out = find_near_duplicates(idx, load)
    assert asked == [["x1", "x2"]]
    assert out.select(C.article_id, C.duplicate_of).rows() == [("x2", "x1")]
    with pytest.raises(KeyError):
        find_near_duplicates(idx, {"x1": a})


def test_candidate_texts_are_loaded_in_sorted_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    # bounded memory: the loader is asked for VERIFY_CHUNK ids at a time, and each chunk's
    # texts are reduced to shingle hashes before the next is asked for
    rows = []
    for fam in range(3):
        a = main_text(fam)
        rows += [(f"{fam}a", T0, a), (f"{fam}b", T0 + timedelta(fam + 1), change_words(a, [7]))]
    idx, texts = index_of(rows)
    whole = find_near_duplicates(idx, texts)
    asked: list[list[str]] = []

    def load(ids: list[str]) -> dict[str, str]:
        asked.append(ids)
        return {i: texts[i] for i in ids}

    monkeypatch.setattr("tasks.steps.dedupe.VERIFY_CHUNK", 4)
    assert find_near_duplicates(idx, load).equals(whole) and whole.height == 3
    assert [len(c) for c in asked] == [4, 2]
    assert sum(asked, []) == sorted(texts)


# ------------------------------------------------------------------------------ real MT data

def load_wmt() -> dict[str, list[tuple[str, str]]]:
    """doc -> [(system, text)]: ten MT systems' translations of the same document; segments
    1-3 are page title/chrome noise and skipped."""
    if not WMT.is_file():
        pytest.fail(f"shared eval data missing: {WMT} (expected beside the repo at {SHARED})")
    docs: dict[str, list[tuple[str, str]]] = {}
    for line in WMT.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        if not row["system"].startswith("SOURCE"):
            docs.setdefault(row["doc"], []).append((row["system"], "\n\n".join(row["segments"][3:])))
    assert len(docs) == 2 and all(len(v) == 10 for v in docs.values())
    return docs


def test_wmt_translations_within_vs_across_documents() -> None:
    docs = load_wmt()
    (d1, sys1), (d2, sys2) = docs.items()
    assert d1.startswith("news_hunan_ribao")
    within = [jaccard(shingles(x), shingles(y)) for s in (sys1, sys2) for (_, x), (_, y) in itertools.combinations(s, 2)]
    across = [jaccard(shingles(x), shingles(y)) for (_, x) in sys1 for (_, y) in sys2]
    # measured: 90 within-doc pairs, Jaccard 0.04..0.85 (median ~0.125; 3 pairs >= 0.3);
    # 100 cross-doc pairs, all exactly 0 -- independent MT systems rarely share 5-word runs
    assert max(across) < 0.02 and float(np.median(within)) > 0.08 and max(within) > 0.75

    rows = [(f"d{n}-{system}", None, text) for n, s in enumerate((sys1, sys2)) for system, text in s]
    idx, texts = index_of(rows)
    doc_of = {i: i[:2] for i, _, _ in rows}
    for thr, expect_min in ((0.2, 3), (0.3, 2), (0.8, 1)):
        cands = lsh_candidate_pairs(idx, thr)
        cross = [p for p in cands.rows() if doc_of[p[0]] != doc_of[p[1]]]
        assert len(cands) > 10 * len(cross)
        out = find_near_duplicates(idx, texts, threshold=thr)
        assert all(doc_of[a] == doc_of[b] for a, b in out.select(C.article_id, C.duplicate_of).rows())
        assert out.height >= expect_min
    # at 0.5: HW-TSC ~ ONLINE-B in both documents (J = 0.85, 0.78); at 0.8 only the first
    out = find_near_duplicates(idx, texts, threshold=0.5)
    assert out.select(C.article_id, C.duplicate_of).rows() == [
        ("d0-ONLINE-B", "d0-HW-TSC"), ("d1-ONLINE-B", "d1-HW-TSC")
    ]
    out = find_near_duplicates(idx, texts, threshold=0.8)
    assert sorted(out.select(C.article_id, C.duplicate_of).row(0)) == sorted(
        ["d0-HW-TSC", "d0-ONLINE-B"]
    )


# ------------------------------------------------------------------------------ order independence

_POOL = [main_text(i) for i in range(len(SEEDS))]


@st.composite
def corpora(draw: st.DrawFn) -> list[tuple[str, datetime | None, str]]:
    rows: list[tuple[str, datetime | None, str]] = []
    for n in range(draw(st.integers(2, 9))):
        text = draw(st.sampled_from(_POOL))
        positions = draw(st.lists(st.integers(0, 2000), max_size=40))
        when = draw(st.none() | st.integers(0, 3).map(lambda d: T0 + timedelta(days=d)))  # ties likely
        rows.append((f"id{draw(st.integers(0, 99)):02d}-{n}", when, change_words(text, positions)))
    return rows


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(corpora(), st.randoms(use_true_random=False), st.sampled_from([0.5, 0.7, 0.8]))
def test_order_independent(rows: list[tuple[str, datetime | None, str]], rnd, thr: float) -> None:
    idx, texts = index_of(rows)
    expected = find_near_duplicates(idx, texts, threshold=thr)
    shuffled = rows[:]
    rnd.shuffle(shuffled)
    idx2, texts2 = index_of(shuffled)  # signatures recomputed in the other order too
    assert_frame_equal(find_near_duplicates(idx2, texts2, threshold=thr), expected)
    assert_frame_equal(find_near_duplicates(idx.sample(fraction=1.0, shuffle=True, seed=rnd.randrange(99)), texts, threshold=thr), expected)
    assert expected[C.article_id].is_unique().all() and expected.schema == pl_schema(DUPLICATES.schema)
    assert expected.equals(expected.sort(C.duplicate_of, C.article_id))
    # clusters are stars: every member within the threshold of its canonical, no canonical a member
    assert (expected[C.similarity] >= thr).all()
    assert not set(expected[C.duplicate_of]) & set(expected[C.article_id])


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.text(alphabet=st.sampled_from(list("ab é上海\n")), max_size=40), min_size=2, max_size=6))
def test_verification_on_hashed_shingles_equals_the_string_jaccard(texts: list[str]) -> None:
    from tasks.steps.dedupe import _jaccard_hashed, _shingle_sets

    sets = _shingle_sets(texts)
    for i, j in itertools.combinations(range(len(texts)), 2):
        assert _jaccard_hashed(sets[i], sets[j]) == pytest.approx(jaccard(shingles(texts[i]), shingles(texts[j])), abs=1e-12)
