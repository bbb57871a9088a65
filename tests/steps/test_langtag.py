"""tasks.steps.langtag: untranslated CJK spans, their language, and paragraph language."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tasks.schema import LANG_EN, LANG_MIXED, LANG_ZH
from tasks.steps.langtag import (
    TaggedSpan,
    find_untranslated_spans,
    paragraph_language,
    tag_page,
    tag_ranges,
    tag_span_language,
    tag_spans,
)
from tasks.steps.segment import segment_page
from tests.paths import EVAL, REPO, SEEDS

WMT23 = EVAL / "wmt23-zhen-mqm"
ASCII_LETTER = re.compile(r"[A-Za-z]")


def _seed(prefix: str) -> str:
    (path,) = SEEDS.glob(f"{prefix}_*.txt")
    return path.read_text(encoding="utf-8")


# --- the seeds ---------------------------------------------------------------------------


def test_seed_003_has_exactly_nine_zh_cn_spans() -> None:
    text = _seed("003")
    spans = tag_spans(text)
    assert len(spans) == 9
    for s in spans:
        assert text[s.char_start : s.char_end] == s.text
        assert s.lang == "zh-cn"
        assert not ASCII_LETTER.search(s.text)
        assert 0.0 <= s.confidence <= 1.0
    lines = text.split("\n")
    per_line = {i + 1: [s.text for s in spans if s.text in line] for i, line in enumerate(lines)}
    assert {k: len(v) for k, v in per_line.items() if v} == {11: 2, 13: 1, 17: 2, 27: 2, 35: 2}
    by_text = [s.text for s in spans]
    assert by_text[0] == "陈吉宁在调研中表示,要"
    # starts with a CJK char: the ASCII comma before 充 is not taken
    assert by_text[1].startswith("充分发挥") and by_text[1].endswith("数字化转型。")
    # inner “…” kept, trailing ASCII ", " before "Drive" dropped
    assert by_text[2].startswith("机器人产业") and "“事关培育发展新质生产力”。" in by_text[2]
    assert by_text[2].endswith("竞争力")
    assert by_text[3] == "从调研中可见"
    # "ecology 。针对": the 。 closes the English sentence, the span starts at 针
    assert by_text[6].startswith("针对相关领域企业")


@pytest.mark.parametrize("prefix", ["000", "001", "002", "004"])
def test_other_seeds_have_no_spans(prefix: str) -> None:
    assert find_untranslated_spans(_seed(prefix)) == []


# --- boundary rules by example --------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("In 1963年，我国 built", ["1963年，我国"]),  # digits extended left
        ("he said “事关” today", ["“事关”"]),  # opening mark extended left, closing kept
        ("H1N1流感 spread", ["流感"]),  # digits glued to an English token stay English
        ("增长30%。 and 增长30st", ["增长30%。", "增长"]),  # trailing digit run unless glued to letters
        ("ecology 。针对", ["针对"]),
        ("stock - 经济观察网 - 专业财经新闻网站", ["经济观察网 - 专业财经新闻网站"]),  # ASCII punct joins
        ("上海,\n北京", ["上海", "北京"]),  # never across a newline, no trailing ASCII comma
        ("pure ASCII text, 123.", []),
    ],
)
def test_span_boundaries(text: str, expected: list[str]) -> None:
    assert [text[s:e] for s, e in find_untranslated_spans(text)] == expected


def test_offsets_are_absolute_with_pos_endpos() -> None:
    text = "上海 Shanghai 北京 Beijing 广州"
    spans = tag_spans(text, pos=3, endpos=20)
    assert [(s.char_start, s.text) for s in spans] == [(12, "北京")]
    assert text[12:14] == "北京"


# --- language ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("span", "lang"),
    [
        ("東京都に住んでいます", "ja"),  # kana decides even though Han dominates
        ("這個國家的經濟發展", "zh-tw"),
        ("这个国家的经济发展", "zh-cn"),
        ("안녕하세요 세계", "ko"),
    ],
)
def test_language(span: str, lang: str) -> None:
    got, conf = tag_span_language(span)
    assert got == lang
    assert 0.5 < conf <= 1.0


def test_short_spans_are_less_certain() -> None:
    assert tag_span_language("上海")[1] < tag_span_language("上海市人民政府今天举行新闻发布会")[1]


@pytest.mark.slow  # child processes
def test_tagging_is_deterministic_across_processes() -> None:
    spans = ["上海市", "这个国家的经济发展", "東京都に住んでいます", "中国人民", "的"]
    code = (
        "import json, sys; from tasks.steps.langtag import tag_span_language; "
        "print(json.dumps([tag_span_language(s) for s in json.loads(sys.argv[1])]))"
    )
    outs = []
    for hashseed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hashseed}
        r = subprocess.run(
            [sys.executable, "-c", code, json.dumps(spans)],
            capture_output=True,
            text=True,
            env=env,
            cwd=REPO,
            check=True,
        )
        outs.append(json.loads(r.stdout))
    assert outs[0] == outs[1] == [list(tag_span_language(s)) for s in spans]


# --- paragraph language and ids ----------------------------------------------------------


def test_paragraph_language() -> None:
    en = "Shanghai held a meeting."
    zh = "机器人产业是上海推进新型工业化的重点领域之一。"
    mixed = "陈吉宁在调研中表示,要Seize digital, intelligent and green opportunities"
    for text, expected in [(en, LANG_EN), (zh, LANG_ZH), (mixed, LANG_MIXED)]:
        assert paragraph_language(text, find_untranslated_spans(text)) == expected
        assert paragraph_language(text, tag_spans(text)) == expected
    doc = en + "\n" + zh
    spans = tag_spans(doc)
    assert paragraph_language(doc, spans, 0, len(en)) == LANG_EN
    assert paragraph_language(doc, spans, len(en) + 1) == LANG_ZH


# --- properties ----------------------------------------------------------------------------

HAN = "上海市中国经济發展這個國家𠀀𪚥々〇"
KANA = "ひらがなカタカナー"
HANGUL = "안녕하세요"
CJK_LETTERS = set(HAN + KANA + HANGUL)
OPENERS = "“「『（《"
PIECES = st.one_of(
    st.sampled_from(["Seize", "digital", "the", "A", "H1N1", "COVID-19", "café"]),
    st.sampled_from(sorted(CJK_LETTERS)),
    st.sampled_from(list("。，、！？”」』）：；…—·" + OPENERS + "　")),
    st.sampled_from(list("0123456789０９%")),
    st.sampled_from([",", " ", ", ", "\n", "\t", "-", ".", "@", "😀", "👍🏽", "\r\n"]),
)
TEXTS = st.lists(PIECES, max_size=40).map("".join)


def _check_spans(text: str, spans: list[tuple[int, int]]) -> None:
    prev_end = -1
    for s, e in spans:
        assert prev_end <= s < e <= len(text)  # sorted, non-overlapping, non-empty
        prev_end = e
        body = text[s:e]
        assert not ASCII_LETTER.search(body)
        assert "\n" not in body
        head = body.lstrip(OPENERS + "0123456789０１２３４５６７８９")
        assert head and head[0] in CJK_LETTERS  # starts with a CJK letter after the left extension
    covered = {i for s, e in spans for i in range(s, e)}
    assert all(i in covered for i, c in enumerate(text) if c in CJK_LETTERS)  # recall 100%


@given(TEXTS)
@settings(max_examples=400, deadline=None)
def test_span_properties(text: str) -> None:
    _check_spans(text, find_untranslated_spans(text))


@given(TEXTS)
@settings(max_examples=100, deadline=None)
def test_tagged_span_properties(text: str) -> None:
    spans = tag_spans(text)
    _check_spans(text, [(s.char_start, s.char_end) for s in spans])
    for s in spans:
        assert isinstance(s, TaggedSpan)
        assert text[s.char_start : s.char_end] == s.text
        assert s.lang in {"zh-cn", "zh-tw", "ja", "ko"}
        assert 0.0 <= s.confidence <= 1.0


@given(TEXTS, st.integers(0, 45), st.integers(0, 45))
@settings(max_examples=300, deadline=None)
def test_pos_endpos_equals_slicing(text: str, a: int, b: int) -> None:
    pos, endpos = min(a, b), max(a, b)
    got = find_untranslated_spans(text, pos, endpos)
    assert got == [(s + pos, e + pos) for s, e in find_untranslated_spans(text[pos:endpos])]


# Pages for the page-level span search of tag_page: lines of PIECES with blank
# lines, title pairs, recurring titles and every line break str.splitlines knows.
PAGE_LINES = st.lists(
    st.one_of(TEXTS, st.sampled_from(["", "", "  ", "Title 上海 | tag", "Release time:May 17, 2024"])),
    max_size=20,
)
LINE_BREAKS = st.sampled_from(["\n", "\n", "\r\n", "\r", "\u2028", "\x85", "\x0b", "\x1c"])


def _spans_by_paragraph_equal_page_spans(text: str) -> None:
    """tag_page searches the page once; each paragraph gets what a search of the paragraph
    alone finds, and the languages paragraph_language gives it and its sentences."""
    articles = segment_page(text)
    tags = tag_page(text, articles)
    for a, article in enumerate(articles):
        for i, p in enumerate(article.paragraphs):
            alone = tag_spans(text, p.char_start, p.char_end)
            got = tags.get((a, i))
            assert (list(got.spans) if got else []) == alone
            if got:
                assert all(s.char_end <= p.char_end for s in got.spans)
                assert got.lang == paragraph_language(text, alone, p.char_start, p.char_end)
                assert got.sentence_langs == tuple(
                    paragraph_language(text, [x for x in alone if x.char_start < e and x.char_end > b], b, e)
                    for b, e in p.sentences
                )


def test_page_spans_split_by_paragraph_equal_paragraph_spans() -> None:
    for path in sorted(SEEDS.glob("*.txt")):
        _spans_by_paragraph_equal_page_spans(path.read_text(encoding="utf-8"))


@given(PAGE_LINES, LINE_BREAKS)
@settings(max_examples=300, deadline=None)
def test_page_spans_split_by_paragraph_equal_paragraph_spans_hypothesis(lines: list[str], brk: str) -> None:
    _spans_by_paragraph_equal_page_spans(brk.join(lines))


def test_tag_ranges_is_tag_spans_on_found_spans() -> None:
    text = _seed("003")
    assert tag_ranges(text, find_untranslated_spans(text)) == tag_spans(text)


# --- real MT residue: WMT23 zh->en MQM annotations ----------------------------------------


def _wmt_rows() -> list[dict[str, str]]:
    path = WMT23 / "zhen_cjk_residue_rows.tsv"
    if not path.is_file():
        pytest.fail(f"WMT23 eval data missing: expected {path} (shared/ beside the repo)")
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))


def test_wmt23_source_language_fragments_are_covered() -> None:
    rows = [r for r in _wmt_rows() if r["category"] == "Accuracy/Source language fragment"]
    assert len(rows) >= 3
    for row in rows:
        marked = row["target"]
        a = marked.index("<v>")
        b = marked.index("</v>") - len("<v>")
        clean = marked.replace("<v>", "").replace("</v>", "")
        spans = find_untranslated_spans(clean)
        covered = {i for s, e in spans for i in range(s, e)}
        cjk = [i for i in range(a, b) if "\u4e00" <= clean[i] <= "\u9fff"]
        assert cjk, row
        assert all(i in covered for i in cjk), (clean[a:b], [clean[s:e] for s, e in spans])
        assert all(s.lang == "zh-cn" for s in tag_spans(clean))
