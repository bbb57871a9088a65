"""Benchmark corpus generator: seed-format pages with a known ground truth (pure, no Prefect).

Pages are recombined from the reference seeds: the seeds' English sentences are the
material for paragraphs, their main and related titles for titles, seed 003's Chinese
spans (plus a small set of traditional-Chinese and Japanese sentences written here) for
untranslated spans. Every page is

    Title line [| tag | tag]
    Release time:Mon DD, YYYY HH:MM PM
    body paragraphs (blank-line separated), the title recurring as a page header
    3-6 related articles: title printed twice + one snippet paragraph

with KNOWN rates of
  - exact-duplicate related articles: a related slot reuses an earlier related article
    (from a bounded pool, so across files) with probability `related_reuse_rate`;
  - near-duplicate main articles: with probability `near_dup_rate` a page's main article
    is a variant of an earlier one: the same title/date, `near_dup_word_changes` words
    replaced and one paragraph dropped; the exact word 5-shingle Jaccard of the pair is
    computed here and must be >= `near_dup_min_jaccard` (else the paragraph is kept);
  - untranslated spans: a main-body paragraph gets one CJK span with probability
    `span_paragraph_rate` (zh-cn / zh-tw / ja by `span_lang_weights`), inserted between two
    English sentences (" English. 中文… English") or at the start of the paragraph
    ("中文… English"), the way seed 003 has them.

Ground truth, written beside the pages as it goes (never the whole corpus in memory):
  truth/spans.parquet        source_file, char_start, char_end, lang, text
  truth/occurrences.parquet  source_file, ordinal, kind, char_start, char_end, group
                             (group: the generator's article id; occurrences sharing a group
                             are exact duplicates -- same title and body)
  truth/near_pairs.parquet   source_file_a, source_file_b, jaccard (main articles)
  truth/summary.json         parameters, counts, realised rates

Deterministic for a seed (random.Random only; no set/dict order or hash() involved).
MB means 2**20 bytes throughout.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections import deque
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

MATERIAL_FILE = (
    Path(__file__).parent / "material.json"
)  # shipped: sentences, titles, tags and spans of the reference seeds
TRUTH_DIR = "truth"
PAGES_DIR = "seeds"
DONE_FILE = "summary.json"
MB = 1 << 20
GENERATOR_VERSION = 2  # part of the cache folder name: bump when the output changes

# Traditional Chinese and Japanese sentences (seed 003 only has simplified Chinese).
TRADITIONAL = (
    "經濟發展與國際合作是這個城市的重要方向。",
    "上海市政府將繼續推動長三角區域一體化發展。",
    "這項計劃已經獲得廣泛支持與認可。",
    "我們將進一步優化營商環境，服務企業發展。",
    "該會議討論了科技創新與產業轉型的問題。",
    "學者認為這個項目對區域經濟有積極影響。",
    "市民對新開放的圖書館表示非常滿意。",
    "這座城市的交通網絡越來越便捷，醫療服務也更加完善。",
    "關於數據中心建設的報告已經發佈。",
    "會議強調要加強綠色轉型與創新驅動發展。",
)
JAPANESE = (
    "上海市は長江デルタ地域の発展を推進しています。",
    "この会議では科学技術の革新について議論されました。",
    "新しい工業化を加速することが重要です。",
    "地元の企業は積極的に投資を行っています。",
    "市民の生活はますます便利になっています。",
    "高品質な発展を実現するために努力します。",
    "代表団は工業団地と学校を訪問しました。",
    "この計画は来年から実施される予定です。",
    "デジタル化とグリーン化の機会をつかむ必要があります。",
    "会議の後、記者の質問に答えました。",
)
# Words a near-duplicate variant swaps in (content words, so shingles really change).
SWAP_WORDS = (
    "regional",
    "municipal",
    "digital",
    "industrial",
    "innovative",
    "coordinated",
    "national",
    "strategic",
    "sustainable",
    "modern",
    "local",
    "public",
    "economic",
    "technical",
)
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_CJK_LETTER = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff]")
_SENT_SPLIT = re.compile(r"(?<=[.?!])\s+(?=[A-Z\"“])")
_CJK_RUN = re.compile(r"[\u4e00-\u9fff“][\u3000-\u303f\u4e00-\u9fff\uff00-\uffef“”,、]*")
_WORD = re.compile(r"\w+")
_SWAPPABLE = re.compile(r"\b[a-z]{5,}\b")
_TRUTH_ROWS = 50_000  # rows buffered per truth table before a Parquet row group is written


@dataclass(frozen=True)
class CorpusParams:
    size_bytes: int
    seed: int = 1
    related_min: int = 3
    related_max: int = 6
    related_reuse_rate: float = 0.3  # share of related slots that repeat an earlier related article
    related_pool: int = 2000  # bounded memory: reuse comes from the last N related articles
    near_dup_rate: float = 0.05  # share of pages whose main article is a variant of an earlier one
    near_dup_word_changes: int = 3
    near_dup_min_jaccard: float = 0.85  # margin over the 0.8 pipeline threshold (LSH recall)
    main_pool: int = 500  # near-dup originals come from the last N main articles
    span_paragraph_rate: float = 0.15
    span_lang_weights: tuple[tuple[str, float], ...] = (("zh-cn", 0.6), ("zh-tw", 0.2), ("ja", 0.2))
    paragraphs_min: int = 4
    paragraphs_max: int = 14
    sentences_min: int = 2
    sentences_max: int = 7
    header_every: int = 4  # the title recurs as a page header after every N paragraphs


def parse_size(text: str) -> int:
    """'10MB', '1GB', '512KB', '100' (MB) -> bytes (MB = 2**20)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMG]?)i?B?\s*", text.upper())
    if not m:
        raise ValueError(f"not a size: {text!r} (use e.g. 10MB, 1GB)")
    unit = {"K": 1 << 10, "M": MB, "G": 1 << 30, "": MB}[m.group(2)]
    return int(float(m.group(1)) * unit)


def format_size(n: int) -> str:
    return f"{n // (1 << 30)}GB" if n % (1 << 30) == 0 else f"{n // MB}MB" if n % MB == 0 else f"{n}B"


# ------------------------------------------------------------------ material from the seeds


@dataclass(frozen=True)
class Material:
    sentences: tuple[str, ...]  # English sentences (no CJK)
    titles: tuple[str, ...]  # title lines without tags
    tags: tuple[str, ...]
    simplified: tuple[str, ...]  # seed 003's Chinese spans (clauses joinable)


def load_material(path: Path = MATERIAL_FILE) -> Material:
    """The generator's material, as shipped with the package: the same on every machine,
    whatever the checkout's seeds/ folder holds."""
    raw = json.loads(path.read_text(encoding="utf-8"))
    return Material(*(tuple(raw[f]) for f in ("sentences", "titles", "tags", "simplified")))


def extract_material(pages: list[str]) -> Material:
    """Sentences, titles, tags and Chinese spans of reference pages (in page order): how
    material.json was made from the five reference seeds (tests/bench/test_corpus.py)."""
    from tasks.steps.segment import segment_page  # the pages' structure, as the pipeline reads it

    sentences: dict[str, None] = {}
    titles: dict[str, None] = {}
    tags: dict[str, None] = {}
    simplified: dict[str, None] = {}
    for text in pages:
        for art in segment_page(text):
            parts = [p.strip() for p in art.title_line.split(" | ")]
            titles.setdefault(parts[0], None)
            for t in parts[1:]:
                if t and len(t) <= 30:
                    tags.setdefault(t, None)
            for p in art.paragraphs:
                para = text[p.char_start : p.char_end]
                for run in _CJK_RUN.findall(para):
                    run = run.rstrip(",，、“ ")
                    if len(_CJK_LETTER.findall(run)) >= 6:
                        simplified.setdefault(run, None)
                if _CJK_LETTER.search(para) or not para.isascii() and any(ord(c) > 0x2FFF for c in para):
                    continue
                for s in _SENT_SPLIT.split(" ".join(para.split())):
                    if 40 <= len(s) <= 400 and s[-1] in '.?!"”':
                        sentences.setdefault(s, None)
    return Material(tuple(sentences), tuple(titles), tuple(tags), tuple(simplified))


# ------------------------------------------------------------------ shingles (verification)


# newsflow's own definitions, so the ground truth agrees with what the pipeline measures.
# Imported when called: the datatrove bench child imports this module from a venv without
# polars (which tasks.steps.dedupe needs).
def shingle_set(text: str) -> set[str]:
    from tasks.steps.minhash import shingles

    return shingles(text)


def jaccard(a: set[str], b: set[str]) -> float:
    from tasks.steps.minhash import jaccard as exact_jaccard

    return exact_jaccard(a, b)


# ------------------------------------------------------------------ article model


@dataclass
class Para:
    """A paragraph as pieces: ('en', text) or (lang, cjk_text); joined by single spaces."""

    pieces: list[tuple[str, str]]


@dataclass
class MainArticle:
    group: int
    title: str  # without tags
    tags: list[str]
    date: str  # value after "Release time:"
    paragraphs: list[Para]

    def title_line(self) -> str:
        return " | ".join([self.title, *self.tags])

    def signature_text(self) -> str:
        return self.title + "\n\n" + "\n\n".join(_para_text(p) for p in self.paragraphs)


@dataclass(frozen=True)
class RelatedArticle:
    group: int
    title_line: str
    snippet: str


def _para_text(p: Para) -> str:
    return " ".join(t for _, t in p.pieces)


@dataclass
class _Counts:
    files: int = 0
    bytes: int = 0
    main_articles: int = 0
    near_dup_variants: int = 0
    near_dup_paragraph_dropped: int = 0
    related_occurrences: int = 0
    related_reused: int = 0
    paragraphs: int = 0
    spans: int = 0
    spans_by_lang: dict[str, int] = field(default_factory=dict)


class _TruthWriter:
    """Buffers rows of one truth table and writes them as Parquet row groups."""

    def __init__(self, path: Path, schema: pa.Schema) -> None:
        self.path, self.schema = path, schema
        self.rows: dict[str, list] = {f.name: [] for f in schema}
        self.writer = pq.ParquetWriter(path, schema, compression="zstd")

    def add(self, *values: object) -> None:
        for col, v in zip(self.rows.values(), values, strict=True):
            col.append(v)
        if len(next(iter(self.rows.values()))) >= _TRUTH_ROWS:
            self.flush()

    def flush(self) -> None:
        if self.rows and next(iter(self.rows.values())):
            self.writer.write_table(pa.table(self.rows, schema=self.schema))
            self.rows = {f.name: [] for f in self.schema}

    def close(self) -> None:
        self.flush()
        self.writer.close()


SPANS_SCHEMA = pa.schema(
    [
        ("source_file", pa.string()),
        ("char_start", pa.int64()),
        ("char_end", pa.int64()),
        ("lang", pa.string()),
        ("text", pa.string()),
    ]
)
OCCURRENCES_SCHEMA = pa.schema(
    [
        ("source_file", pa.string()),
        ("ordinal", pa.int64()),
        ("kind", pa.string()),
        ("char_start", pa.int64()),
        ("char_end", pa.int64()),
        ("group", pa.int64()),
    ]
)
NEAR_PAIRS_SCHEMA = pa.schema(
    [("source_file_a", pa.string()), ("source_file_b", pa.string()), ("jaccard", pa.float64())]
)


class CorpusGenerator:
    """Generates pages one at a time (`pages()`), or a whole corpus folder (`write`)."""

    def __init__(self, params: CorpusParams, material: Material | None = None) -> None:
        self.p = params
        self.m = material or load_material()
        self.rng = random.Random(params.seed)
        self.related_pool: deque[RelatedArticle] = deque(maxlen=params.related_pool)
        self.main_pool: deque[tuple[str, MainArticle]] = deque(maxlen=params.main_pool)
        self.next_group = 0
        self.related_keys: set[tuple[str, int, int]] = set()  # ~100 bytes per related article
        self.counts = _Counts()
        self.langs = [lang for lang, _ in params.span_lang_weights]
        self.lang_weights = [w for _, w in params.span_lang_weights]

    # -- pieces ------------------------------------------------------------------------

    def _group(self) -> int:
        self.next_group += 1
        return self.next_group

    def _sentence(self, index: int | None = None) -> str:
        s = self.m.sentences[self.rng.randrange(len(self.m.sentences)) if index is None else index]
        # vary numbers so recombined text stays distinct at 1 GB ("2024" -> "2019", "95" -> "37")
        return re.sub(
            r"\b\d{2,4}\b", lambda m: str(self.rng.randrange(10 ** (len(m.group()) - 1), 10 ** len(m.group()))), s
        )

    def _cjk(self, lang: str) -> str:
        rng = self.rng
        if lang == "zh-tw":
            return rng.choice(TRADITIONAL)
        if lang == "ja":
            return rng.choice(JAPANESE)
        text = rng.choice(self.m.simplified)
        clauses = [c for c in re.split(r"(?<=[,，])", text) if c]
        if len(clauses) > 2:  # a contiguous run of clauses, so span texts vary
            i = rng.randrange(len(clauses))
            j = rng.randrange(i + 1, len(clauses) + 1)
            text = "".join(clauses[i:j]).rstrip(",，")
            if len(_CJK_LETTER.findall(text)) < 6:
                text = "".join(clauses).rstrip(",，")
        return text

    def _paragraph(self, n_min: int, n_max: int, spans: bool) -> Para:
        rng = self.rng
        sentences = [self._sentence() for _ in range(rng.randint(n_min, n_max))]
        pieces = [("en", s) for s in sentences]
        if spans and rng.random() < self.p.span_paragraph_rate:
            lang = rng.choices(self.langs, self.lang_weights)[0]
            cjk = self._cjk(lang)
            if cjk[-1] not in "。！？" and lang != "zh-cn":
                cjk += "。"
            # before a sentence (paragraph start or between two sentences), never last:
            # English must follow so the span ends where the CJK text does
            pieces.insert(rng.randrange(len(pieces)), (lang, cjk))
        return Para(pieces)

    def _date(self) -> str:
        rng = self.rng
        day, year, hour, minute = rng.randint(1, 28), rng.randint(2019, 2024), rng.randint(0, 23), rng.randint(0, 59)
        return f"{rng.choice(_MONTHS)} {day:02d}, {year} {hour:02d}:{minute:02d} PM"

    def _title(self) -> tuple[str, list[str]]:
        rng = self.rng
        title = rng.choice(self.m.titles)
        tags = rng.sample(self.m.tags, k=min(len(self.m.tags), rng.choice((0, 0, 1, 2, 3))))
        return title, tags

    def _new_main(self) -> MainArticle:
        title, tags = self._title()
        n = self.rng.randint(self.p.paragraphs_min, self.p.paragraphs_max)
        paras = [self._paragraph(self.p.sentences_min, self.p.sentences_max, spans=True) for _ in range(n)]
        return MainArticle(self._group(), title, tags, self._date(), paras)

    def _variant(self, original: MainArticle) -> tuple[MainArticle, float, bool]:
        """A near duplicate: words changed in English pieces, one paragraph dropped, J >= min."""
        rng = self.rng
        paras = [Para(list(p.pieces)) for p in original.paragraphs]
        changed = 0
        for _ in range(self.p.near_dup_word_changes * 10):
            if changed >= self.p.near_dup_word_changes:
                break
            p = rng.choice(paras)
            k = rng.randrange(len(p.pieces))
            lang, text = p.pieces[k]
            words = list(_SWAPPABLE.finditer(text)) if lang == "en" else []
            if not words:
                continue
            w = rng.choice(words)
            new = rng.choice([x for x in SWAP_WORDS if x != w.group()])
            p.pieces[k] = (lang, text[: w.start()] + new + text[w.end() :])
            changed += 1
        base = shingle_set(original.signature_text())
        kept = MainArticle(self._group(), original.title, list(original.tags), original.date, paras)
        j_kept = jaccard(base, shingle_set(kept.signature_text()))
        if len(paras) >= 4:
            drop = rng.randrange(len(paras))
            dropped = MainArticle(kept.group, kept.title, kept.tags, kept.date, paras[:drop] + paras[drop + 1 :])
            j = jaccard(base, shingle_set(dropped.signature_text()))
            if j >= self.p.near_dup_min_jaccard:
                return dropped, j, True
        if j_kept < self.p.near_dup_min_jaccard:
            raise AssertionError(f"near-duplicate construction failed: Jaccard {j_kept:.3f}")
        return kept, j_kept, False

    def _related(self) -> tuple[RelatedArticle, bool]:
        rng = self.rng
        if self.related_pool and rng.random() < self.p.related_reuse_rate:
            return rng.choice(self.related_pool), True
        title, tags = self._title()
        n = len(self.m.sentences)
        picks = [rng.randrange(n) for _ in range(rng.randint(3, 6))]
        # Unplanned near duplicates: two related articles with the same title and the same
        # first two sentences (numbers aside) can reach Jaccard >= 0.8 once truncated -- seen
        # 11 times in 100 MB. So (title, first two sentences) is unique per related article.
        for _ in range(50):
            key = (title, *sorted(picks[:2]))
            if key not in self.related_keys:
                break
            picks[:2] = [rng.randrange(n), rng.randrange(n)]
        self.related_keys.add(key)
        # a truncated snippet, like the seeds' (no spans: related blocks are English)
        snippet = " ".join(self._sentence(i) for i in picks)
        cut = snippet.rfind(" ", 0, max(120, int(len(snippet) * rng.uniform(0.7, 1.0))))
        art = RelatedArticle(self._group(), " | ".join([title, *tags]), snippet[: cut if cut > 0 else len(snippet)])
        self.related_pool.append(art)
        return art, False

    # -- one page ----------------------------------------------------------------------

    def page(self, source_file: str) -> tuple[str, list[tuple], list[tuple], tuple | None]:
        """(text, span rows, occurrence rows, near pair row | None) for one page."""
        rng, c = self.rng, self.counts
        near: tuple | None = None
        if self.main_pool and rng.random() < self.p.near_dup_rate:
            k = rng.randrange(len(self.main_pool))
            orig_file, original = self.main_pool[k]
            del self.main_pool[k]  # families of two: original + one variant (pairs are unambiguous)
            main, j, dropped = self._variant(original)
            near = (orig_file, source_file, round(j, 6))
            c.near_dup_variants += 1
            c.near_dup_paragraph_dropped += dropped
        else:
            main = self._new_main()
            self.main_pool.append((source_file, main))
        c.main_articles += 1

        out: list[str] = []
        pos = 0
        spans: list[tuple] = []
        occ: list[tuple] = []

        def emit(s: str) -> None:
            nonlocal pos
            out.append(s)
            pos += len(s)

        title_line = main.title_line()
        emit(title_line + "\n\n")
        emit(f"Release time:{main.date}\n\n")
        for i, para in enumerate(main.paragraphs):
            if i and i % self.p.header_every == 0:
                emit(title_line + "\n\n")
            for k, (lang, text) in enumerate(para.pieces):
                if k:
                    emit(" ")
                if lang != "en":
                    spans.append((source_file, pos, pos + len(text), lang, text))
                    c.spans += 1
                    c.spans_by_lang[lang] = c.spans_by_lang.get(lang, 0) + 1
                emit(text)
            emit("\n\n")
        c.paragraphs += len(main.paragraphs)
        emit(title_line)  # the header once more at the end, right before the related block
        main_end = pos
        emit("\n")
        occ.append((source_file, 0, "main", 0, main_end, main.group))
        emit("\n")
        for ordinal in range(1, rng.randint(self.p.related_min, self.p.related_max) + 1):
            rel, reused = self._related()
            c.related_occurrences += 1
            c.related_reused += reused
            start = pos
            emit(rel.title_line + "\n" + rel.title_line + "\n\n")
            emit(rel.snippet)
            occ.append((source_file, ordinal, "related", start, pos, rel.group))
            emit("\n\n")
        return "".join(out), spans, occ, near

    def pages(self) -> Iterator[tuple[str, str, list[tuple], list[tuple], tuple | None]]:
        """(source_file, text, spans, occurrences, near pair) until size_bytes is reached."""
        i = 0
        while self.counts.bytes < self.p.size_bytes:
            h = hashlib.sha256(f"{self.p.seed}:{i}".encode()).hexdigest()[:16]
            name = f"{i // 1000:03d}/{i:06d}_{h}.txt"
            text, spans, occ, near = self.page(name)
            self.counts.files += 1
            self.counts.bytes += len(text.encode("utf-8"))
            yield name, text, spans, occ, near
            i += 1

    def summary(self) -> dict:
        c = self.counts
        return {
            "params": asdict(self.p),
            "counts": asdict(c),
            "rates": {
                "related_reuse": c.related_reused / c.related_occurrences if c.related_occurrences else 0.0,
                "near_dup": c.near_dup_variants / c.main_articles if c.main_articles else 0.0,
                "span_per_paragraph": c.spans / c.paragraphs if c.paragraphs else 0.0,
            },
        }


def write_corpus(out_dir: Path, params: CorpusParams, material: Material | None = None) -> dict:
    """Write pages under out_dir/seeds/ and ground truth under out_dir/truth/, streaming.

    summary.json is written last: its presence marks a complete corpus."""
    out_dir = Path(out_dir)
    pages_dir, truth_dir = out_dir / PAGES_DIR, out_dir / TRUTH_DIR
    truth_dir.mkdir(parents=True, exist_ok=True)
    (truth_dir / DONE_FILE).unlink(missing_ok=True)
    gen = CorpusGenerator(params, material)
    spans_w = _TruthWriter(truth_dir / "spans.parquet", SPANS_SCHEMA)
    occ_w = _TruthWriter(truth_dir / "occurrences.parquet", OCCURRENCES_SCHEMA)
    near_w = _TruthWriter(truth_dir / "near_pairs.parquet", NEAR_PAIRS_SCHEMA)
    made: set[str] = set()
    for name, text, spans, occ, near in gen.pages():
        folder = name.split("/", 1)[0]
        if folder not in made:
            (pages_dir / folder).mkdir(parents=True, exist_ok=True)
            made.add(folder)
        (pages_dir / name).write_text(text, encoding="utf-8", newline="")
        for row in spans:
            spans_w.add(*row)
        for row in occ:
            occ_w.add(*row)
        if near:
            near_w.add(*near)
    for w in (spans_w, occ_w, near_w):
        w.close()
    summary = gen.summary()
    (truth_dir / DONE_FILE).write_text(json.dumps(summary, indent=1))
    return summary
