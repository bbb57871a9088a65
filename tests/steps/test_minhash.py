"""Tests (and examples of use) for tasks/steps/minhash.py: shingles and MinHash signatures."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tasks.schema import MINHASH_INDEX, TIMEZONE, C
from tasks.steps.dedupe import _band_keys, lsh_params
from tasks.steps.minhash import (
    _one_permutation_minhash,
    _shingle_hashes_batch,
    _word_hashes,
    _words,
    jaccard,
    minhash_signatures,
    shingle_hashes,
    shingles,
    signatures_frame,
)
from tests.paths import REPO
from tests.steps.articles import change_words, main_text, pl_schema

TZ = ZoneInfo(TIMEZONE)
T0 = datetime(2024, 5, 1, 9, 0, tzinfo=TZ)


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
@given(
    st.lists(
        st.text(_ASSIGNED, min_size=0, max_size=60) | st.sampled_from(["ΣΑΣ ΟΔΟΣ", "İstanbul x²y", "a b c"]),
        min_size=1,
        max_size=5,
    )
)
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


@pytest.mark.slow  # child processes
@settings(max_examples=5, deadline=None)
@given(st.lists(st.text(min_size=0, max_size=200), min_size=1, max_size=6))
def test_signatures_deterministic_in_fresh_process(texts: list[str]) -> None:
    code = (
        "import json, sys; from tasks.steps.minhash import minhash_signatures; "
        "print(json.dumps(minhash_signatures(json.loads(sys.stdin.read())).tolist()))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        input=json.dumps(texts),
        capture_output=True,
        text=True,
        cwd=REPO,
        check=True,
        env={"PYTHONHASHSEED": "random", "PATH": ""},
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
