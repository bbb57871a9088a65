"""The benchmark corpus generator: seed format, determinism, and a ground truth that holds."""

from __future__ import annotations

import hashlib
from pathlib import Path

import polars as pl
import pytest

from bench.corpus import (
    JAPANESE,
    TRADITIONAL,
    CorpusGenerator,
    CorpusParams,
    extract_material,
    format_size,
    jaccard,
    load_material,
    parse_size,
    shingle_set,
    write_corpus,
)
from tasks.steps.langtag import find_untranslated_spans, tag_span_language
from tasks.steps.minhash import shingles
from tasks.steps.segment import segment_page
from tests.paths import reference_seeds

SIZE = 400 * 1024


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("corpus")
    write_corpus(out, CorpusParams(size_bytes=SIZE, seed=7, near_dup_rate=0.2))
    return out


def _digest(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            h.update(p.relative_to(folder).as_posix().encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def test_sizes() -> None:
    assert parse_size("10MB") == 10 * 2**20
    assert parse_size("1GB") == 2**30
    assert parse_size("512KB") == 512 * 1024
    assert format_size(parse_size("100MB")) == "100MB"
    with pytest.raises(ValueError):
        parse_size("ten")


def test_material_comes_from_the_seeds() -> None:
    """material.json is what extract_material makes of the five reference seeds."""
    m = load_material()
    assert extract_material([page.read_text(encoding="utf-8") for page in reference_seeds()]) == m
    assert len(m.sentences) > 100 and len(m.titles) >= 5 and m.simplified
    assert all(s.isascii() or not any("\u4e00" <= c <= "\u9fff" for c in s) for s in m.sentences)
    assert any("陈吉宁" in s for s in m.simplified)  # seed 003's spans


def test_deterministic_for_a_seed(tmp_path: Path, corpus: Path) -> None:
    write_corpus(tmp_path / "again", CorpusParams(size_bytes=SIZE, seed=7, near_dup_rate=0.2))
    assert _digest(tmp_path / "again" / "seeds") == _digest(corpus / "seeds")
    for name in ("spans", "occurrences", "near_pairs"):
        a = pl.read_parquet(corpus / "truth" / f"{name}.parquet")
        b = pl.read_parquet(tmp_path / "again" / "truth" / f"{name}.parquet")
        assert a.equals(b)
    write_corpus(tmp_path / "other", CorpusParams(size_bytes=SIZE, seed=8))
    assert _digest(tmp_path / "other" / "seeds") != _digest(corpus / "seeds")


def test_size_is_reached(corpus: Path) -> None:
    total = sum(p.stat().st_size for p in (corpus / "seeds").rglob("*.txt"))
    assert SIZE <= total < SIZE + 64 * 1024


def test_span_truth_matches_text_and_span_rule(corpus: Path) -> None:
    truth = pl.read_parquet(corpus / "truth" / "spans.parquet")
    assert set(truth["lang"].unique()) == {"zh-cn", "zh-tw", "ja"}
    by_file = truth.partition_by("source_file", as_dict=True)
    for path in sorted((corpus / "seeds").rglob("*.txt")):
        name = path.relative_to(corpus / "seeds").as_posix()
        text = path.read_text(encoding="utf-8")
        rows = by_file.get((name,))
        expected = [] if rows is None else list(zip(rows["char_start"], rows["char_end"], strict=True))
        assert find_untranslated_spans(text) == expected, name
        if rows is not None:
            for s, e, t in zip(rows["char_start"], rows["char_end"], rows["text"], strict=True):
                assert text[s:e] == t


def test_handwritten_spans_have_the_language_they_claim() -> None:
    assert all(tag_span_language(t)[0] == "zh-tw" for t in TRADITIONAL)
    assert all(tag_span_language(t)[0] == "ja" for t in JAPANESE)


def test_occurrences_and_exact_duplicates(corpus: Path) -> None:
    occ = pl.read_parquet(corpus / "truth" / "occurrences.parquet")
    texts: dict[int, str] = {}
    for (name,), rows in occ.partition_by("source_file", as_dict=True).items():
        text = (corpus / "seeds" / name).read_text(encoding="utf-8")
        articles = segment_page(text)
        assert [a.ordinal for a in articles] == rows["ordinal"].to_list()
        assert [a.kind for a in articles] == rows["kind"].to_list()
        for a, start, end, group in zip(articles, rows["char_start"], rows["char_end"], rows["group"], strict=True):
            assert (a.char_start, a.char_end) == (start, end)
            content = a.title + "\n" + a.body
            assert texts.setdefault(group, content) == content  # same group -> same article
    reused = occ.group_by("group").len().filter(pl.col("len") > 1)
    assert reused.height > 0
    assert len(set(texts.values())) == len(texts)  # different groups -> different articles


def test_near_duplicates_are_near(corpus: Path) -> None:
    near = pl.read_parquet(corpus / "truth" / "near_pairs.parquet")
    assert near.height > 0

    def main_text(name: str) -> str:
        text = (corpus / "seeds" / name).read_text(encoding="utf-8")
        a = segment_page(text)[0]
        return a.title + "\n\n" + a.body

    for a, b, j in near.iter_rows():
        exact = jaccard(shingles(main_text(a)), shingles(main_text(b)))
        assert exact >= 0.8
        assert exact == pytest.approx(j, abs=1e-6)
        assert main_text(a) != main_text(b)


def test_rates_are_as_configured(corpus: Path) -> None:
    import json

    summary = json.loads((corpus / "truth" / "summary.json").read_text())
    rates = summary["rates"]
    assert 0.2 <= rates["related_reuse"] <= 0.4
    assert 0.05 <= rates["near_dup"] <= 0.35  # 31 pages: a variant needs an unused original before it
    assert 0.1 <= rates["span_per_paragraph"] <= 0.2


def test_pages_stream() -> None:
    gen = CorpusGenerator(CorpusParams(size_bytes=10**9, seed=1)).pages()
    first = next(gen)  # a 1 GB corpus yields its first page at once: nothing is held
    assert first[0].endswith(".txt") and first[1].count("Release time:") == 1


def test_shingle_rule_matches_newsflow() -> None:
    text = "Ａ\u00a0b  c\r\nd e, F g!"
    assert shingle_set(text) == shingles(text)
