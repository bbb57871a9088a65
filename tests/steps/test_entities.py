"""Tests (and examples of use) for tasks/steps/entities.py: people, places, organisations."""

from __future__ import annotations

import unicodedata

import polars as pl
import pytest

from tasks.steps.entities import entities_frame, find_entities, find_organizations, find_people, find_places
from tasks.steps.lexicons import word_list
from tests.paths import SEEDS

SEED_FILES = sorted(SEEDS.glob("*.txt"))


def seed(prefix: str) -> str:
    return next(p for p in SEED_FILES if p.name.startswith(prefix)).read_text(encoding="utf-8")


def test_people_in_seed_000() -> None:
    people = find_people(seed("000"))
    for name in ["Chen Jining", "Gong Zheng", "Jin Zhuanglong", "Xi Jinping", "Li Zheng"]:
        assert name in people
    assert "Shanghai" not in people and not any("Shanghai" in p for p in people)
    assert people.index("Chen Jining") < people.index("Jin Zhuanglong")  # first-appearance order
    assert len(people) == len(set(people))


def test_people_precision_on_all_seeds() -> None:
    found = {p for s in SEED_FILES for p in find_people(s.read_text(encoding="utf-8"))}
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
        # The written form is the name: a suffix stays, both forms are reported when both are written.
        ("Held in Wenzhou City, Zhejiang Province.", ["Wenzhou City", "Zhejiang Province"]),
        (
            "In Wenzhou City, Zhejiang Province; Zhejiang and Wenzhou agreed.",
            ["Wenzhou City", "Zhejiang Province", "Zhejiang", "Wenzhou"],
        ),
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


# ------------------------------------------------------------------ the error classes
# Each expectation follows the labelling rules of docs/ENTITIES.md (checked by hand).


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # names that are not pinyin, found by their context
        ("Erken Tunyazi, Deputy Secretary of the Party Committee, attended.", ["Erken Tunyazi"]),
        ("Villager Aysha Abdukadir said the orchard is open.", ["Aysha Abdukadir"]),
        ("In Nalati Grassland, Secretary Erlan said so.", ["Erlan"]),
        ("City leaders Wu Qing, Huayuan and Shu Qing attended.", ["Wu Qing", "Huayuan", "Shu Qing"]),
        ("Pasang, a customs officer, checked the trucks.", ["Pasang"]),
        # fragments of other names are not people
        ("Chow Tai Fook Jewelry Group opened in Hong Kong.", []),
    ],
)
def test_people_beyond_pinyin(text: str, expected: list[str]) -> None:
    assert find_people(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # ordinals belong to the body's name
        (
            "The Fourth Meeting of the Standing Committee of the 16th Shanghai Municipal People's Congress was held.",
            ["Standing Committee of the 16th Shanghai Municipal People's Congress"],
        ),
        (
            "The Third Plenary Session of the 12th Shanghai Municipal Committee of the CPC opened.",
            ["12th Shanghai Municipal Committee of the CPC"],
        ),
        # a party congress is a meeting: the body it is of is the organisation
        ("The spirit of the 20th National Congress of the Communist Party of China.", ["Communist Party of China"]),
        # coordinated names are two, "and" inside one name stays
        (
            "Welcome New World Development and Chow Tai Fook Jewelry Group to invest.",
            ["New World Development", "Chow Tai Fook Jewelry Group"],
        ),
        (
            "Zheng Jiachun, Chairman of Hong Kong New World Development and Chow Tai Fook Jewelry Group, came.",
            ["New World Development", "Chow Tai Fook Jewelry Group"],
        ),
        ("The National Development and Reform Commission attended.", ["National Development and Reform Commission"]),
        # army units
        (
            "Veterans of the Volunteer Army and the 70th Division of the 24th Army met.",
            ["Volunteer Army", "70th Division of the 24th Army"],
        ),
        # an event's name, a venue and a bare generic body are no organisations
        ("The Party Committee Secretaries' Symposium was held.", []),
        ("The plenary session was held at the World Expo Center.", []),
        ("The Party Group met. The Standing Committee met.", []),
    ],
)
def test_organisation_error_classes(text: str, expected: list[str]) -> None:
    assert find_organizations(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # named sites by their feature word
        (
            "Leaders inspected Sanyang Wetland and crossed the Yalu River Bridge to Yuanshan Port.",
            ["Sanyang Wetland", "Yalu River Bridge", "Yuanshan Port"],
        ),
        # venues are places
        ("The plenary session was held at the World Expo Center.", ["World Expo Center"]),
        # foreign places and world regions
        (
            "The delegation flew from Beijing to Algeria and the Central African Republic, in Central Africa.",
            ["Beijing", "Algeria", "Central African Republic", "Central Africa"],
        ),
        ("Veterans met in Panmunjom, Korea.", ["Panmunjom", "Korea"]),
        # a gazetteer name that reads like a pinyin name is a place
        ("Chen Jining met Zheng Jiachun in Hong Kong.", ["Hong Kong"]),
    ],
)
def test_place_error_classes(text: str, expected: list[str]) -> None:
    assert find_places(text) == expected


def test_entities_are_flat() -> None:
    found = find_entities("The Party Committee of the Xizang Autonomous Region met in Lhasa.")
    assert found == {
        "people": [],
        "places": ["Lhasa"],
        "organizations": ["Party Committee of the Xizang Autonomous Region"],
    }


def test_batch_agrees_with_one_text_and_never_raises() -> None:
    texts = [seed(p) for p in ("000", "002", "004")]
    texts += ["", "上海 Shanghai Municipal Party Committee", "\x00\x01\x02 Hong Kong \x01", "Secretary"]
    frame = entities_frame(pl.Series(texts))
    assert frame.height == len(texts)
    for i, text in enumerate(texts):
        one = find_entities(text)
        assert one == {k: frame[k][i].to_list() for k in ("people", "places", "organizations")}
        for names in one.values():
            assert len(names) == len(set(names)) and all(n and n == n.strip() and "\x00" not in n for n in names)


def test_pinyin_syllable_file_matches_pypinyin() -> None:
    from pypinyin.pinyin_dict import pinyin_dict

    derived = set()
    for value in set(pinyin_dict.values()):
        for p in value.split(","):
            base = "".join(ch for ch in unicodedata.normalize("NFKD", p) if not unicodedata.combining(ch)).lower()
            if any(v in base for v in "aeiou"):
                derived.add(base)
    assert set(word_list("pinyin_syllables.txt")) == derived


def test_surname_file_agrees_with_pypinyin() -> None:
    from pypinyin import Style, lazy_pinyin

    rows = [r.split("\t") for r in word_list("surnames.tsv")[1:]]
    assert len(rows) >= 150
    for han, py, *corrected in rows:
        if not (corrected and corrected[0] == "*"):
            assert "".join(lazy_pinyin(han, style=Style.NORMAL)) == py, han
