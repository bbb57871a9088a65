"""Tests (and examples of use) for tasks/steps/entities.py: people, places, organisations."""

from __future__ import annotations

import unicodedata

import pytest

from tasks.steps.entities import _lines, find_organizations, find_people, find_places
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


def test_pinyin_syllable_file_matches_pypinyin() -> None:
    from pypinyin.pinyin_dict import pinyin_dict

    derived = set()
    for value in set(pinyin_dict.values()):
        for p in value.split(","):
            base = "".join(ch for ch in unicodedata.normalize("NFKD", p) if not unicodedata.combining(ch)).lower()
            if any(v in base for v in "aeiou"):
                derived.add(base)
    assert set(_lines("pinyin_syllables.txt")) == derived


def test_surname_file_agrees_with_pypinyin() -> None:
    from pypinyin import Style, lazy_pinyin

    rows = [r.split("\t") for r in _lines("surnames.tsv")[1:]]
    assert len(rows) >= 150
    for han, py, *corrected in rows:
        if not (corrected and corrected[0] == "*"):
            assert "".join(lazy_pinyin(han, style=Style.NORMAL)) == py, han
