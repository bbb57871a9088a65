"""Tests (and examples of use) for tasks/steps/segment.py: a page -> main + related articles
(title, tags, body) -> paragraphs -> sentences."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tasks.schema import KIND_MAIN, KIND_RELATED
from tasks.steps.segment import segment_page, split_sentences, split_title_and_tags
from tests.conftest import seed_text
from tests.paths import SEEDS


def _segment_all(seeds_dir: Path):
    return {
        p.name[:3]: (p.read_text(encoding="utf-8"), segment_page(p.read_text(encoding="utf-8")))
        for p in sorted(seeds_dir.glob("*.txt"))
    }


def test_seeds_hold_25_article_occurrences_5_main_20_related(seeds_dir: Path) -> None:
    pages = _segment_all(seeds_dir)
    kinds = [a.kind for _, arts in pages.values() for a in arts]
    assert len(kinds) == 25
    assert kinds.count(KIND_MAIN) == 5
    assert kinds.count(KIND_RELATED) == 20
    assert {k: len(arts) for k, (_, arts) in pages.items()} == {"000": 6, "001": 6, "002": 6, "003": 1, "004": 6}


def test_main_articles_have_release_times_except_003(seeds_dir: Path) -> None:
    pages = _segment_all(seeds_dir)
    times = {k: arts[0].release_time_raw for k, (_, arts) in pages.items()}
    assert times == {
        "000": "May 17, 2024 17:21 PM",
        "001": "Apr 13, 2024 21:49 PM",
        "002": "Apr 15, 2024 19:48 PM",
        "003": None,
        "004": "Jun 06, 2024 12:01 PM",
    }


def test_recurring_title_lines_are_dropped_from_the_body() -> None:
    text = seed_text("002")
    main = segment_page(text)[0]
    title = main.title_line
    assert text.count(title) == 7  # the title line, five page headers and the last line
    assert title not in main.body
    assert len(main.header_lines) == 1 + 1 + 5 + 1  # title, release time, headers, last line


def test_related_article_is_title_pair_then_snippet() -> None:
    text = seed_text("001")
    related = segment_page(text)[1]
    assert related.kind == KIND_RELATED
    assert related.ordinal == 1
    assert related.title_line.startswith("The full text is here.")
    assert len(related.paragraphs) == 1
    assert related.body.startswith("The Provisions of Shanghai Municipality")
    assert text[related.char_start : related.char_end].count(related.title_line) == 2


def test_offsets_point_at_the_exact_characters(seeds_dir: Path) -> None:
    for text, articles in _segment_all(seeds_dir).values():
        for article in articles:
            for paragraph in article.paragraphs:
                piece = text[paragraph.char_start : paragraph.char_end]
                assert piece == piece.strip() and piece
                for sentence in paragraph.sentences:
                    assert paragraph.char_start <= sentence.char_start < sentence.char_end <= paragraph.char_end


def test_sentences_split_on_english_and_chinese_full_stops() -> None:
    text = (
        "The U.S. delegation met at 3.5 p.m. today. It went well! 会议召开。上海发言！Then Co., Ltd. Cheng Fubo left?"
    )
    got = [text[s.char_start : s.char_end] for s in split_sentences(text, 0, len(text))]
    assert got == [
        "The U.S. delegation met at 3.5 p.m. today.",
        "It went well!",
        "会议召开。",
        "上海发言！",
        "Then Co., Ltd. Cheng Fubo left?",
    ]


def test_a_bare_related_block_has_no_main_article() -> None:
    text = "Title A | tag\nTitle A | tag\n\nSnippet a.\n\nTitle B\nTitle B\n\nSnippet b.\n"
    articles = segment_page(text)
    assert [a.kind for a in articles] == [KIND_RELATED, KIND_RELATED]
    assert [a.title_line for a in articles] == ["Title A | tag", "Title B"]


def test_crlf_and_nbsp_pages_segment_like_lf_pages() -> None:
    text = seed_text("000")
    crlf = text.replace("\n", "\r\n")
    assert [a.title_line for a in segment_page(crlf)] == [a.title_line for a in segment_page(text)]


page_text = st.lists(
    st.one_of(
        st.sampled_from(
            [
                "",
                "",
                "Title | tag",
                "Release time:May 17, 2024 17:21 PM",
                "陈吉宁在调研中表示,要Seize it.",
                "Dup line",
                "  ",
            ]
        ),
        st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=60),
    ),
    max_size=30,
).map("\n".join)


@settings(max_examples=300, deadline=None)
@given(page_text)
def test_segment_never_raises_and_never_loses_a_character(text: str) -> None:
    articles = segment_page(text)
    covered = bytearray(len(text))
    for article in articles:
        ranges = list(article.header_lines) + [(p.char_start, p.char_end) for p in article.paragraphs]
        for start, end in ranges:
            assert 0 <= start <= end <= len(text)
            covered[start:end] = b"\x01" * (end - start)
    lost = [ch for i, ch in enumerate(text) if not covered[i] and not ch.isspace()]
    assert lost == []


# The pre-optimisation split_sentences, kept as an oracle for the regex/fast-path version.
_REF_END = re.compile(r"[.?!]+[\"'”’)\]]*(?=\s)|[。！？]+[”’」』）)]*")


def _ref_split(text: str, start: int, end: int, abbreviations: frozenset[str]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    cursor = start

    def add(a: int, b: int) -> None:
        piece = text[a:b]
        if piece.strip():
            s = a + len(piece) - len(piece.lstrip())
            out.append((s, s + len(piece.strip())))

    for m in _REF_END.finditer(text, start, end):
        if m.group()[0] == ".":
            found = re.search(r"(\S+)$", text[cursor : m.start()])
            token = (found.group(1) if found else "").lower().strip("\"'“‘(")
            if token in abbreviations or (len(token) == 1 and token.isalpha()) or (token.isdigit() and len(token) <= 2):
                continue
        add(cursor, m.end())
        cursor = m.end()
    add(cursor, end)
    return out


sentence_text = st.lists(
    st.one_of(
        st.sampled_from(
            [
                "Mr",
                "No",
                "U.S",
                "p.m",
                "approx",
                "APPROX",
                "e.g",
                "Dec",
                "3",
                "12",
                "123",
                "x",
                "İ",
                "word",
                "sentences",
            ]
        ),
        st.sampled_from(
            list(".?!。！？”’」』）)\"'“‘( \n\t\u3000\xa0\r")
            + ["...", "?!", ". ", "。”", '"""((', "((((((((", "“““““““‘"]
        ),
        st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=8),
    ),
    max_size=40,
).map("".join)


@settings(max_examples=500, deadline=None)
@given(sentence_text, st.integers(0, 200), st.integers(0, 200))
@example("See ((((((((approx. 5 units. And “““““““‘Mr. Li left. Then 0123456789ab. Yes", 0, 200)
@example("A very longwordwithoutspaces. Then U.S.\n. Next x\n. End 12\n. Last", 0, 200)
@example("Word. Another. Third!", 3, 200)
def test_split_sentences_matches_the_reference_rule(text: str, a: int, b: int) -> None:
    from tasks.steps.segment import _ABBREVIATIONS

    start, end = min(a, b, len(text)), min(max(a, b), len(text))
    got = [(s.char_start, s.char_end) for s in split_sentences(text, start, end)]
    assert got == _ref_split(text, start, end, _ABBREVIATIONS)


# ------------------------------------------------------------------ title and tags

TITLE_CASES = {
    "Shanghai Week: New Mission of the Yangtze River Delta | Technology | One Week": (
        "Shanghai Week: New Mission of the Yangtze River Delta",
        ["Technology", "One Week"],
    ),
    'What does Shanghai rely on to safeguard the safety of medical insurance funds?, Over the past five years, nearly 600 million yuan of "life-saving money" has been recovered. Supervision | Inspection | Shanghai': (
        'What does Shanghai rely on to safeguard the safety of medical insurance funds?, Over the past five years, nearly 600 million yuan of "life-saving money" has been recovered.',
        ["Supervision", "Inspection", "Shanghai"],
    ),
    "Why can Shanghai retain talents by providing housing subsidies for outstanding talents and special incentives for enterprise backbone talents? Engineering | Innovation | Enterprise": (
        "Why can Shanghai retain talents by providing housing subsidies for outstanding talents and special incentives for enterprise backbone talents?",
        ["Engineering", "Innovation", "Enterprise"],
    ),
    "Confidence in Future Development, Municipal People's Congress Representatives Review Government Work Report for the First Half of the Year: Shanghai's Resilient Economy | Representative | Shanghai": (
        "Confidence in Future Development, Municipal People's Congress Representatives Review Government Work Report for the First Half of the Year: Shanghai's Resilient Economy",
        ["Representative", "Shanghai"],
    ),
    "Do a better job in assisting Tibet at a new starting point! Chen Jining led a delegation to go deep into the rural aid to Tibet in the Shigatse Hospital School Park | Development | Work": (
        "Do a better job in assisting Tibet at a new starting point! Chen Jining led a delegation to go deep into the rural aid to Tibet in the Shigatse Hospital School Park",
        ["Development", "Work"],
    ),
    "How did Auntie become a college student after being trained?, The first batch of undergraduate students in home economics in Shanghai graduated from Shanghai Open University in July | Home Economics | Students": (
        "How did Auntie become a college student after being trained?, The first batch of undergraduate students in home economics in Shanghai graduated from Shanghai Open University in July",
        ["Home Economics", "Students"],
    ),
    'How can pain points be resolved?, Smart elderly care products that are overly "intelligent" or lead to discomfort standards for the elderly | Shanghai | Products': (
        'How can pain points be resolved?, Smart elderly care products that are overly "intelligent" or lead to discomfort standards for the elderly',
        ["Shanghai", "Products"],
    ),
    'The full text is here. The "Several Provisions of Shanghai on Promoting the Development of Financial Leasing in Pudong New Area" will be implemented from October. | Medical Devices | Shanghai Municipality': (
        'The full text is here. The "Several Provisions of Shanghai on Promoting the Development of Financial Leasing in Pudong New Area" will be implemented from October.',
        ["Medical Devices", "Shanghai Municipality"],
    ),
    'Are you familiar with Ling Jiajia, who is actively helping young people find employment? This "internet celebrity" workplace mentor offers | platform | Ling Jiajia': (
        'Are you familiar with Ling Jiajia, who is actively helping young people find employment? This "internet celebrity" workplace mentor offers',
        ["platform", "Ling Jiajia"],
    ),
    # The last segment has quotes and 5 words: not a tag, so no segment is; all title.
    'Serving the Citizens, Shanghai Big Data Center: Promoting the Upgrade of City | Governance | Code Application through "Suishen Code"': (
        'Serving the Citizens, Shanghai Big Data Center: Promoting the Upgrade of City | Governance | Code Application through "Suishen Code"',
        [],
    ),
    "Exchange of information and experiences related to the research on the theme education of the Party Group, Mayor Gong Zheng held a meeting of the Municipal Government Party Group to educate | Theme | Party Group": (
        "Exchange of information and experiences related to the research on the theme education of the Party Group, Mayor Gong Zheng held a meeting of the Municipal Government Party Group to educate",
        ["Theme", "Party Group"],
    ),
    # A subtitle segment stays in the title (verbatim, with its pipe).
    "We braved gunfire and bullets to go to the front line to offer condolences and performances. | The oral history of the veteran soldiers of the Volunteer Army, the tunnel before negotiations in Panmunjom | Section Chief | Comfort performance | The Volunteer Army": (
        "We braved gunfire and bullets to go to the front line to offer condolences and performances. | The oral history of the veteran soldiers of the Volunteer Army, the tunnel before negotiations in Panmunjom",
        ["Section Chief", "Comfort performance", "The Volunteer Army"],
    ),
    "After reviewing these draft regulations, the Fourth Meeting of the Standing Committee of the 16th Shanghai Municipal People's Congress was held in Shanghai | Report | Regulations": (
        "After reviewing these draft regulations, the Fourth Meeting of the Standing Committee of the 16th Shanghai Municipal People's Congress was held in Shanghai",
        ["Report", "Regulations"],
    ),
    "To deepen high-level reform and opening up and fully stimulate the vitality of high-quality development! The Shanghai Municipal Party Committee passed a heavyweight document regulation | Industry | Power": (
        "To deepen high-level reform and opening up and fully stimulate the vitality of high-quality development! The Shanghai Municipal Party Committee passed a heavyweight document regulation",
        ["Industry", "Power"],
    ),
    "Chen Jining Meets with Chairman Zheng Jiachun of Hong Kong New World Development and Chow Tai Fook Jewelry Group | Shanghai | Zheng Jiachun": (
        "Chen Jining Meets with Chairman Zheng Jiachun of Hong Kong New World Development and Chow Tai Fook Jewelry Group",
        ["Shanghai", "Zheng Jiachun"],
    ),
}


def test_every_pipe_line_in_the_seeds_is_covered() -> None:
    lines = {
        ln.strip()
        for p in sorted(SEEDS.glob("*.txt"))
        for ln in p.read_text(encoding="utf-8").splitlines()
        if " | " in ln
    }
    assert lines == set(TITLE_CASES)


@pytest.mark.parametrize(("line", "expected"), list(TITLE_CASES.items()), ids=range(len(TITLE_CASES)))
def test_split_title_and_tags_seed_lines(line: str, expected: tuple[str, list[str]]) -> None:
    assert split_title_and_tags(line) == expected


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("Plain title without tags", ("Plain title without tags", [])),
        ("  Title\u00a0with  nbsp |  A\u00a0B | | A B |  ", ("Title with nbsp", ["A B"])),
        ("Title | X | Y | X", ("Title", ["X", "Y"])),
        ("Title｜Full-width", ("Title", ["Full-width"])),
        ("", ("", [])),
    ],
)
def test_split_title_and_tags_normalises(line: str, expected: tuple[str, list[str]]) -> None:
    assert split_title_and_tags(line) == expected
