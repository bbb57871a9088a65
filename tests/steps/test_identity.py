"""Tests (and examples of use) for tasks/steps/identity.py: normalized text, article and span ids."""

from __future__ import annotations

import re
import unicodedata

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tasks.steps.identity import article_id, normalize_text, span_id
from tests.paths import SEEDS
from tests.steps.articles import SEED_FILES, parse_seed


def _normalize_reference(text: str) -> str:
    """The rule normalize_text implements, spelled out without its fast paths."""
    text = unicodedata.normalize("NFC", text)
    text = re.sub(r"\r\n|[\r\u2028\u2029\x85]", "\n", text).replace("\ufeff", "")
    text = re.sub(r"[^\S\n]+", " ", text)
    text = "\n".join(line.strip() for line in text.split("\n"))
    return re.sub(r"\n{2,}", "\n\n", text).strip()


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.text(
        alphabet=st.sampled_from(list("ab é\u0301\n\r\t\xa0\u3000\u2028\u2029\x85\ufeff\x1c汉\u200b\x07")), max_size=60
    )
)
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
    seeds = {p.name[:3]: parse_seed(p.read_text(encoding="utf-8")) for p in SEED_FILES}
    rel1 = [article_id(t, b) for t, b in seeds["001"][1]]
    rel2 = [article_id(t, b) for t, b in seeds["002"][1]]
    assert len(rel1) == len(rel2) == 5 and rel1 == rel2

    related = [article_id(t, b) for _, rel in seeds.values() for t, b in rel]
    mains = [article_id(t, b) for (t, b), _ in seeds.values()]
    assert (len(related), len(set(related))) == (20, 15)
    assert (len(mains + related), len(set(mains + related))) == (25, 20)

    # the same file with CRLF line endings yields the same ids
    crlf = SEEDS.glob("001_*.txt").__next__().read_text(encoding="utf-8")
    _, rel_crlf = parse_seed(crlf.replace("\n", "\r\n"))
    assert [article_id(t, b) for t, b in rel_crlf] == rel1


# ------------------------------------------------------------------------------ shingles / minhash


def test_span_id_is_stable_short_hex() -> None:
    a = span_id("seeds/003.txt", 10, 20)
    assert a == span_id("seeds/003.txt", 10, 20)
    assert re.fullmatch(r"[0-9a-f]{16}", a)
    assert a != span_id("seeds/003.txt", 10, 21)
