"""tasks.steps.enrich: title/tags, release time, entities, keywords, pinyin, the batch frame."""

from __future__ import annotations

import unicodedata
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from tasks.steps import enrich
from tasks.steps.enrich import (
    RELEASE_TIME_RAW,
    TITLE_LINE,
    UNTRANSLATED_CHARS,
    count_words,
    enrich_articles,
    extract_keywords,
    find_organizations,
    find_people,
    find_places,
    parse_release_time,
    span_pinyin,
    split_title_and_tags,
)
from tasks.schema import ARTICLES, TIMEZONE, C

SEEDS = sorted((Path(__file__).parent.parent / "seeds").glob("*.txt"))
TZ = ZoneInfo(TIMEZONE)


def seed(prefix: str) -> str:
    return next(p for p in SEEDS if p.name.startswith(prefix)).read_text(encoding="utf-8")


# ------------------------------------------------------------------ release time


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [
        ("000", datetime(2024, 5, 17, 17, 21, tzinfo=TZ)),
        ("001", datetime(2024, 4, 13, 21, 49, tzinfo=TZ)),
        ("002", datetime(2024, 4, 15, 19, 48, tzinfo=TZ)),
        ("004", datetime(2024, 6, 6, 12, 1, tzinfo=TZ)),
    ],
)
def test_release_time_of_dated_seeds(prefix: str, expected: datetime) -> None:
    line = next(ln for ln in seed(prefix).splitlines() if ln.startswith("Release time:"))
    got = parse_release_time(line.split(":", 1)[1])
    assert got == expected
    assert got.utcoffset().total_seconds() == 8 * 3600
    assert str(got.tzinfo) == TIMEZONE


def test_seed_003_has_no_release_time() -> None:
    assert not any(ln.startswith("Release time") for ln in seed("003").splitlines())


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("May 17, 2024 17:21 PM", datetime(2024, 5, 17, 17, 21, tzinfo=TZ)),
        ("Jun 06, 2024 12:01 PM", datetime(2024, 6, 6, 12, 1, tzinfo=TZ)),
        ("Jun 06, 2024 09:30 PM", datetime(2024, 6, 6, 9, 30, tzinfo=TZ)),  # 24h: PM ignored
        ("Jun 06, 2024 00:05 AM", datetime(2024, 6, 6, 0, 5, tzinfo=TZ)),
        ("  June 6, 2024\u00a017:21 pm ", datetime(2024, 6, 6, 17, 21, tzinfo=TZ)),
        ("Release time:May 17, 2024 17:21 PM", datetime(2024, 5, 17, 17, 21, tzinfo=TZ)),
        ("2024-05-17 17:21", datetime(2024, 5, 17, 17, 21, tzinfo=TZ)),
        ("May 17, 2024", datetime(2024, 5, 17, tzinfo=TZ)),
    ],
)
def test_release_time_formats(raw: str, expected: datetime) -> None:
    assert parse_release_time(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [None, "", "   ", "garbage", "May 32, 2024 17:21 PM", "Foo 17, 2024 17:21", "May 17, 2024 25:61 PM", "17:21 PM"],
)
def test_release_time_garbage_is_none(raw: str | None) -> None:
    assert parse_release_time(raw) is None


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
    lines = {ln.strip() for p in SEEDS for ln in p.read_text(encoding="utf-8").splitlines() if " | " in ln}
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


# ------------------------------------------------------------------ entities


def test_people_in_seed_000() -> None:
    people = find_people(seed("000"))
    for name in ["Chen Jining", "Gong Zheng", "Jin Zhuanglong", "Xi Jinping", "Li Zheng"]:
        assert name in people
    assert "Shanghai" not in people and not any("Shanghai" in p for p in people)
    assert people.index("Chen Jining") < people.index("Jin Zhuanglong")  # first-appearance order
    assert len(people) == len(set(people))


def test_people_precision_on_all_seeds() -> None:
    found = {p for s in SEEDS for p in find_people(s.read_text(encoding="utf-8"))}
    for name in ["Ma Xingrui", "Zheng Jiachun", "Ling Jiajia", "Zhang Xiaohong", "Wang Qingxian", "Xu Kunlin"]:
        assert name in found
    # Nothing that is a place or an organisation word.
    for bad in ["Hong Kong", "Shanghai", "Release Time", "New World", "Tai Fook"]:
        assert bad not in found


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Mayor Gong Zheng met Wang Hao in Hong Kong.", ["Gong Zheng", "Wang Hao"]),
        ("He Said nothing. The Long March. Shanghai Jiading.", []),
        ("Secretary Chen Jining’s speech", ["Chen Jining"]),
    ],
)
def test_people_examples(text: str, expected: list[str]) -> None:
    assert find_people(text) == expected


def test_places() -> None:
    assert "Shanghai" in find_places(seed("000"))
    for prefix in ("001", "002"):
        assert "Pudong New Area" in find_places(seed(prefix))
        assert "Pudong" not in find_places(seed(prefix))  # the longer name wins
    assert "Kashgar" in find_places(seed("002"))
    for prefix in ("001", "004"):
        assert "Yangtze River Delta" in find_places(seed(prefix))
    assert {"Wenzhou", "Hefei"} <= set(find_places(seed("004")) + find_places(seed("001")))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Held in Wenzhou City, Zhejiang Province.", ["Wenzhou", "Zhejiang"]),
        ("Chen Jining visited Zepu County and Baoshan District.", ["Zepu County", "Baoshan District"]),
        ("Published on Xinmin.com and in Hong Kong.", ["Hong Kong"]),
        ("the Xinjiang Uygur Autonomous Region", ["Xinjiang Uygur Autonomous Region"]),
    ],
)
def test_places_examples(text: str, expected: list[str]) -> None:
    assert find_places(text) == expected


def test_organizations() -> None:
    orgs = find_organizations(seed("000"))
    assert "Ministry of Industry and Information Technology" in orgs
    assert "Municipal Party Committee" in orgs
    assert "Shanghai Municipal Party Committee" in orgs
    assert not any("Release time" in o or o.startswith("The ") for o in orgs)
    assert "Shanghai Fanuc Robot Co., Ltd." in find_organizations(seed("003"))
    assert "National Development and Reform Commission" in find_organizations(seed("004"))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Release time:May 17, 2024 17:21 PM", []),
        (
            "on behalf of the Shanghai Municipal Party Committee and Municipal Government, thanked",
            ["Shanghai Municipal Party Committee", "Municipal Government"],
        ),
        ("The Ministry of Commerce said.", ["Ministry of Commerce"]),
        ("Municipal People's Congress Representatives Review Government Work Report", ["Municipal People's Congress"]),
        ("Welcome New World Development Group to invest", ["New World Development Group"]),
        ("The Committee met.", []),
    ],
)
def test_organizations_examples(text: str, expected: list[str]) -> None:
    assert find_organizations(text) == expected


# ------------------------------------------------------------------ keywords, words, pinyin


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
    fast = enrich._keywords_frame(ids, texts, k)
    assert_frame_equal(fast, enrich._keywords_frame(ids, texts, k, packed=False))


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
    assert_frame_equal(enrich._top_ngrams(ids, code, cap), enrich._top_ngrams(ids, code, cap, packed=False))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.sampled_from([1, 2, 3, 6, 1 << 62])), max_size=40), st.integers(1, 5))
def test_best_first_ranks_by_score_then_row(rows: list[tuple[int, int]], cap: int) -> None:
    # A 2**62 score takes the lexsort branch (the packed int64 would overflow).
    rows = sorted(rows, key=lambda r: r[0])
    art = np.array([a for a, _ in rows], dtype=np.int64)
    score = np.array([s for _, s in rows], dtype=np.int64)
    ranked = sorted(range(len(rows)), key=lambda i: (rows[i][0], -rows[i][1], i))
    place = [sum(rows[j][0] == rows[i][0] for j in ranked[:n]) for n, i in enumerate(ranked)]
    assert enrich._best_first(art, score, cap).tolist() == [i for i, p in zip(ranked, place, strict=True) if p < cap]


def test_top_ngrams_packed_falls_back_when_keys_do_not_fit() -> None:
    code = np.array([(1 << 20) + 1, 1, 2], dtype=np.uint64)  # 21 bits a code: 63 bits, + 2 for the ids
    assert enrich._top_packed(pl.Series([0, 1, 2]), code, 5) is None
    assert enrich._top_packed(pl.Series([0, 0, 1]), code, 5) is not None


def test_count_words() -> None:
    assert count_words("") == 0
    assert count_words("Shanghai's high-quality development, 2024!") == 3 + 1
    assert count_words("陈吉宁在调研中表示,要Seize digital") == 10 + 2  # one word per Han character


def test_span_pinyin() -> None:
    assert span_pinyin("陈吉宁") == "chén jí níng"
    assert span_pinyin("上海 GDP") == "shàng hǎi GDP"
    assert span_pinyin("") == ""


def test_pinyin_syllable_file_matches_pypinyin() -> None:
    from pypinyin.pinyin_dict import pinyin_dict

    derived = set()
    for value in set(pinyin_dict.values()):
        for p in value.split(","):
            base = "".join(ch for ch in unicodedata.normalize("NFKD", p) if not unicodedata.combining(ch)).lower()
            if any(v in base for v in "aeiou"):
                derived.add(base)
    assert set(enrich._lines("pinyin_syllables.txt")) == derived


def test_surname_file_agrees_with_pypinyin() -> None:
    from pypinyin import Style, lazy_pinyin

    rows = [r.split("\t") for r in enrich._lines("surnames.tsv")[1:]]
    assert len(rows) >= 150
    for han, py, *corrected in rows:
        if not (corrected and corrected[0] == "*"):
            assert "".join(lazy_pinyin(han, style=Style.NORMAL)) == py, han


# ------------------------------------------------------------------ batch frame


def frame(rows: list[dict]) -> pl.DataFrame:
    return pl.DataFrame(
        rows,
        schema={
            C.article_id: pl.String,
            TITLE_LINE: pl.String,
            RELEASE_TIME_RAW: pl.String,
            C.body: pl.String,
            C.n_paragraphs: pl.Int64,
            UNTRANSLATED_CHARS: pl.Int64,
        },
    )


def expected_schema() -> pl.Schema:
    articles = pl.from_arrow(ARTICLES.schema.empty_table()).schema
    names = [
        C.article_id,
        C.title,
        C.tags,
        C.published_at,
        C.n_chars,
        C.n_words,
        C.untranslated_ratio,
        C.people,
        C.places,
        C.organizations,
        C.keywords,
    ]
    return pl.Schema({n: articles[n] for n in names})


def test_enrich_articles_schema_and_values() -> None:
    out = enrich_articles(
        frame(
            [
                {
                    C.article_id: "a",
                    TITLE_LINE: "Shanghai Week: New Mission of the Yangtze River Delta | Technology | One Week",
                    RELEASE_TIME_RAW: "Apr 13, 2024 21:49 PM",
                    C.body: seed("001"),
                    C.n_paragraphs: 3,
                    UNTRANSLATED_CHARS: 163,
                },
                {
                    C.article_id: "b",
                    TITLE_LINE: "Empty",
                    RELEASE_TIME_RAW: None,
                    C.body: "",
                    C.n_paragraphs: 0,
                    UNTRANSLATED_CHARS: 0,
                },
                {
                    C.article_id: "c",
                    TITLE_LINE: "x",
                    RELEASE_TIME_RAW: "garbage",
                    C.body: "abcd",
                    C.n_paragraphs: 1,
                    UNTRANSLATED_CHARS: 1,
                },
            ]
        )
    )
    assert out.schema == expected_schema()
    assert out[C.article_id].to_list() == ["a", "b", "c"]
    a, b, c = out.rows(named=True)
    assert a[C.title] == "Shanghai Week: New Mission of the Yangtze River Delta"
    assert a[C.tags] == ["Technology", "One Week"]
    assert a[C.published_at] == datetime(2024, 4, 13, 21, 49, tzinfo=TZ)
    assert a[C.n_chars] == len(seed("001"))
    assert a[C.untranslated_ratio] == pytest.approx(163 / len(seed("001")))
    assert "Chen Jining" in a[C.people] and "Yangtze River Delta" in a[C.places] and a[C.keywords]
    assert a[C.n_words] == count_words(seed("001"))
    assert b == {
        C.article_id: "b",
        C.title: "Empty",
        C.tags: [],
        C.published_at: None,
        C.n_chars: 0,
        C.n_words: 0,
        C.untranslated_ratio: 0.0,
        C.people: [],
        C.places: [],
        C.organizations: [],
        C.keywords: ["empty"],
    }
    assert c[C.untranslated_ratio] == 0.25 and c[C.published_at] is None
    for col in (C.tags, C.people, C.places, C.organizations, C.keywords):
        assert out[col].null_count() == 0


def test_enrich_articles_agrees_with_single_text_functions() -> None:
    body = seed("004")
    title_line = body.splitlines()[0]
    out = enrich_articles(
        frame(
            [
                {
                    C.article_id: "x",
                    TITLE_LINE: title_line,
                    RELEASE_TIME_RAW: None,
                    C.body: body,
                    C.n_paragraphs: 1,
                    UNTRANSLATED_CHARS: 0,
                }
            ]
        )
    ).row(0, named=True)
    title, _ = split_title_and_tags(title_line)
    text = f"{title}\n\n{body}"
    assert out[C.people] == find_people(text)
    assert out[C.places] == find_places(text)
    assert out[C.organizations] == find_organizations(text)
    assert out[C.keywords] == extract_keywords(title, body)


def test_enrich_articles_empty_and_untyped_frames() -> None:
    assert enrich_articles(frame([])).schema == expected_schema()
    # BatchRows.take_frames builds an empty frame from empty lists (Null dtypes).
    untyped = pl.DataFrame(
        {n: [] for n in (C.article_id, TITLE_LINE, RELEASE_TIME_RAW, C.body, C.n_paragraphs, UNTRANSLATED_CHARS)}
    )
    assert enrich_articles(untyped).schema == expected_schema()
    nulls = pl.DataFrame(
        {
            C.article_id: ["n"],
            TITLE_LINE: [None],
            RELEASE_TIME_RAW: [None],
            C.body: [None],
            C.n_paragraphs: [None],
            UNTRANSLATED_CHARS: [None],
        }
    )
    row = enrich_articles(nulls).row(0, named=True)
    assert row[C.title] == "" and row[C.n_chars] == 0 and row[C.untranslated_ratio] == 0.0 and row[C.keywords] == []


# ------------------------------------------------------------------ never raise


@settings(max_examples=75, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=300), st.text(max_size=60))
def test_enrich_functions_never_raise(text: str, short: str) -> None:
    title, tags = split_title_and_tags(text)
    assert isinstance(title, str) and all(isinstance(t, str) and t for t in tags)
    assert parse_release_time(short) is None or parse_release_time(short).tzinfo is not None
    for fn in (find_people, find_places, find_organizations):
        assert all(isinstance(x, str) for x in fn(text))
    assert isinstance(extract_keywords(short, text), list)
    assert count_words(text) >= 0
    assert isinstance(span_pinyin(text), str)
    out = enrich_articles(
        frame(
            [
                {
                    C.article_id: "h",
                    TITLE_LINE: short,
                    RELEASE_TIME_RAW: short,
                    C.body: text,
                    C.n_paragraphs: 1,
                    UNTRANSLATED_CHARS: 0,
                }
            ]
        )
    )
    assert out.schema == expected_schema() and out.height == 1


def test_flow_process_does_not_load_the_pinyin_dictionary() -> None:
    # pypinyin's phrase dictionary is ~55 MB of Python objects: only the batch workers that
    # tag spans load it, never the flow process that runs them (its memory adds to the peak)
    import subprocess
    import sys

    code = "import sys, flows.ingest, tasks.steps.enrich; print('pypinyin' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=Path(__file__).resolve().parents[1])
    assert out.stdout.strip() == "False"
    from tasks.steps.enrich import span_pinyin

    assert span_pinyin("陈吉宁") == "chén jí níng"
