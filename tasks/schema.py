"""The data contract: every Parquet dataset newsflow writes, its columns, types,
partitioning and sort order. This is the only module that spells column names;
everything else refers to them through `C` (and the dataset specs below).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import pyarrow as pa

if TYPE_CHECKING:  # polars is imported on use: the segmenter (so this module) runs in the datatrove venv
    import polars as pl

TIMEZONE = "Asia/Shanghai"
UNKNOWN_PARTITION = "unknown"  # year/month partition value for articles without a date

# Parquet settings shared by every dataset (determinism: fixed codec, level, row groups).
COMPRESSION = "zstd"
COMPRESSION_LEVEL = 3
ROW_GROUP_SIZE = 64_000


class C:
    """Column names, one place."""

    # identity and provenance
    article_id = "article_id"
    source_file = "source_file"
    source_sha256 = "source_sha256"
    ordinal = "ordinal"
    char_start = "char_start"
    char_end = "char_end"
    # articles
    kind = "kind"
    title = "title"
    tags = "tags"
    published_at = "published_at"
    body = "body"
    n_chars = "n_chars"
    n_words = "n_words"
    n_paragraphs = "n_paragraphs"
    untranslated_ratio = "untranslated_ratio"
    people = "people"
    places = "places"
    organizations = "organizations"
    keywords = "keywords"
    # segments
    level = "level"
    paragraph_index = "paragraph_index"
    sentence_index = "sentence_index"
    text = "text"
    lang = "lang"
    # spans
    span_id = "span_id"
    confidence = "confidence"
    pinyin = "pinyin"
    gloss = "gloss"
    gloss_source = "gloss_source"
    # duplicates
    duplicate_of = "duplicate_of"
    method = "method"
    similarity = "similarity"
    # files (the manifest)
    n_bytes = "n_bytes"
    encoding = "encoding"
    status = "status"
    reason = "reason"
    run_id = "run_id"
    processed_at = "processed_at"
    # dedup index (internal)
    signature = "signature"
    # internal columns of a run's spilled batch rows (never in a published dataset):
    # which batch a row came from and its position there, for a deterministic global winner
    batch = "_batch"
    row = "_row"
    # internal columns of the article rows the enrich step reads (never published)
    release_time_raw = "release_time_raw"
    untranslated_chars = "untranslated_chars"
    # hive partition columns
    year = "year"
    month = "month"
    source_bucket = "source_bucket"


# Enumerations used as column values.
KIND_MAIN, KIND_RELATED = "main", "related"
LEVEL_PARAGRAPH, LEVEL_SENTENCE = "paragraph", "sentence"
LANG_EN, LANG_ZH, LANG_MIXED = "en", "zh", "mixed"
STATUS_PROCESSED, STATUS_QUARANTINED = "processed", "quarantined"
METHOD_MINHASH = "minhash_jaccard"

_str_list = pa.list_(pa.string())
_ts_local = pa.timestamp("us", tz=TIMEZONE)
_ts_utc = pa.timestamp("us", tz="UTC")


def empty_frame(schema: pa.Schema) -> pl.DataFrame:
    """A frame with no rows and exactly these columns and types."""
    import polars as pl

    return pl.from_arrow(schema.empty_table())  # type: ignore[return-value]


def conform(frame: pl.DataFrame, schema: pa.Schema) -> pl.DataFrame:
    """`frame` with exactly the contract's columns and types (an Arrow cast: a column missing
    or of a type that does not convert raises)."""
    import polars as pl

    return pl.from_arrow(frame.to_arrow().cast(schema))  # type: ignore[return-value]


@dataclass(frozen=True)
class DatasetSpec:
    """One Parquet dataset under data/: its logical schema (what producers hand over;
    it may include a partition column such as `status`), the hive partition columns
    (strings; derived ones like `year` need not be in `schema`) and the row sort order."""

    name: str
    schema: pa.Schema
    partition_by: tuple[str, ...]
    sort_by: tuple[str, ...]
    description: str
    row_group_rows: int = ROW_GROUP_SIZE  # rows per Parquet row group (a writer holds one at a time)
    # The partition that holds an empty file while the dataset has no rows, so that every
    # reader (Spark, DuckDB, polars, pyarrow) finds the dataset and its schema from the first
    # run on; None for internal datasets.
    empty_partition: tuple[str, ...] | None = None

    @property
    def partition_schema(self) -> pa.Schema:
        return pa.schema([pa.field(p, pa.string()) for p in self.partition_by])

    @property
    def file_schema(self) -> pa.Schema:
        """Columns stored inside each Parquet file (partition columns live in the path)."""
        return pa.schema([f for f in self.schema if f.name not in self.partition_by])

    @property
    def full_schema(self) -> pa.Schema:
        """Schema as a reader sees it: file columns plus partition columns."""
        return pa.schema(list(self.file_schema) + list(self.partition_schema))


ARTICLES = DatasetSpec(
    name="articles",
    schema=pa.schema(
        [
            pa.field(C.article_id, pa.string(), nullable=False),
            pa.field(C.kind, pa.string(), nullable=False),
            pa.field(C.title, pa.string(), nullable=False),
            pa.field(C.tags, _str_list, nullable=False),
            pa.field(C.published_at, _ts_local),
            pa.field(C.body, pa.string(), nullable=False),
            pa.field(C.n_chars, pa.int64(), nullable=False),
            pa.field(C.n_words, pa.int64(), nullable=False),
            pa.field(C.n_paragraphs, pa.int64(), nullable=False),
            pa.field(C.untranslated_ratio, pa.float64(), nullable=False),
            pa.field(C.people, _str_list, nullable=False),
            pa.field(C.places, _str_list, nullable=False),
            pa.field(C.organizations, _str_list, nullable=False),
            pa.field(C.keywords, _str_list, nullable=False),
        ]
    ),
    partition_by=(C.year, C.month),
    sort_by=(C.article_id,),
    description="One row per unique article (exact duplicates collapsed).",
    empty_partition=(UNKNOWN_PARTITION, UNKNOWN_PARTITION),
    # ~1 KB a row with the body: 16k rows is ~20 MB a row group, as 64k rows of the narrow datasets
    row_group_rows=16_000,
)

OCCURRENCES = DatasetSpec(
    name="occurrences",
    schema=pa.schema(
        [
            pa.field(C.article_id, pa.string(), nullable=False),
            pa.field(C.source_file, pa.string(), nullable=False),
            pa.field(C.source_sha256, pa.string(), nullable=False),
            pa.field(C.ordinal, pa.int64(), nullable=False),
            pa.field(C.kind, pa.string(), nullable=False),
            pa.field(C.char_start, pa.int64(), nullable=False),
            pa.field(C.char_end, pa.int64(), nullable=False),
        ]
    ),
    partition_by=(C.source_bucket,),
    sort_by=(C.source_file, C.ordinal),
    description="Every place an article was seen: [char_start, char_end) of the decoded source file.",
    empty_partition=("00",),
)

SEGMENTS = DatasetSpec(
    name="segments",
    schema=pa.schema(
        [
            pa.field(C.article_id, pa.string(), nullable=False),
            pa.field(C.source_file, pa.string(), nullable=False),
            pa.field(C.level, pa.string(), nullable=False),
            pa.field(C.paragraph_index, pa.int64(), nullable=False),
            pa.field(C.sentence_index, pa.int64()),
            pa.field(C.text, pa.string(), nullable=False),
            pa.field(C.lang, pa.string(), nullable=False),
            pa.field(C.char_start, pa.int64(), nullable=False),
            pa.field(C.char_end, pa.int64(), nullable=False),
        ]
    ),
    partition_by=(C.source_bucket,),
    sort_by=(C.source_file, C.char_start, C.level),
    description="Paragraphs (level=paragraph, sentence_index null) and their sentences (level=sentence).",
    empty_partition=("00",),
)

SPANS = DatasetSpec(
    name="spans",
    schema=pa.schema(
        [
            pa.field(C.span_id, pa.string(), nullable=False),
            pa.field(C.article_id, pa.string(), nullable=False),
            pa.field(C.source_file, pa.string(), nullable=False),
            pa.field(C.paragraph_index, pa.int64(), nullable=False),
            pa.field(C.char_start, pa.int64(), nullable=False),
            pa.field(C.char_end, pa.int64(), nullable=False),
            pa.field(C.text, pa.string(), nullable=False),
            pa.field(C.lang, pa.string(), nullable=False),
            pa.field(C.confidence, pa.float64(), nullable=False),
            pa.field(C.pinyin, pa.string(), nullable=False),
            pa.field(C.gloss, pa.string()),
            pa.field(C.gloss_source, pa.string()),
        ]
    ),
    partition_by=(C.source_bucket,),
    sort_by=(C.source_file, C.char_start),
    description="Untranslated Chinese/Japanese/Korean spans; decoded_source[char_start:char_end] == text.",
    empty_partition=("00",),
)

DUPLICATES = DatasetSpec(
    name="duplicates",
    schema=pa.schema(
        [
            pa.field(C.article_id, pa.string(), nullable=False),
            pa.field(C.duplicate_of, pa.string(), nullable=False),
            pa.field(C.method, pa.string(), nullable=False),
            pa.field(C.similarity, pa.float64(), nullable=False),
        ]
    ),
    partition_by=(C.method,),
    sort_by=(C.duplicate_of, C.article_id),
    description="Near-duplicate links: article_id is a near-duplicate of the canonical duplicate_of.",
    empty_partition=(METHOD_MINHASH,),
)

FILES = DatasetSpec(
    name="files",
    schema=pa.schema(
        [
            pa.field(C.source_file, pa.string(), nullable=False),
            pa.field(C.source_sha256, pa.string()),
            pa.field(C.n_bytes, pa.int64()),
            pa.field(C.encoding, pa.string()),
            pa.field(C.status, pa.string(), nullable=False),
            pa.field(C.reason, pa.string()),
            pa.field(C.run_id, pa.string(), nullable=False),
            pa.field(C.processed_at, _ts_utc, nullable=False),
        ]
    ),
    partition_by=(C.status,),
    sort_by=(C.source_file,),
    description="The manifest: one row per input file, processed or quarantined with a reason.",
    empty_partition=(STATUS_PROCESSED,),
)

# Internal: the persistent near-duplicate index (MinHash signatures of every article ever
# ingested). Lives under data/_index/ so Spark/pyarrow/DuckDB globs skip it. The folder
# names the signature scheme (v3: one-permutation MinHash, 32-bit values, see tasks.steps.dedupe):
# signatures of two schemes never meet, and a run re-signs every article the current index lacks.
SIGNATURE_LENGTH = 128  # MinHash positions per article
MINHASH_INDEX = DatasetSpec(
    name="_index/minhash_v3",
    schema=pa.schema(
        [
            pa.field(C.article_id, pa.string(), nullable=False),
            pa.field(C.published_at, _ts_local),
            pa.field(C.signature, pa.list_(pa.uint32(), SIGNATURE_LENGTH), nullable=False),
        ]
    ),
    partition_by=(),
    sort_by=(C.article_id,),
    description="MinHash signature per article, for near-duplicate search across runs.",
)

# Columns of `spans` that the enrich step adds (tasks/steps/enrich.py::enrich_spans); the
# rows step builds the others.
SPAN_ENRICHMENT_COLUMNS: tuple[str, ...] = (C.pinyin, C.gloss, C.gloss_source)

PUBLIC_DATASETS: tuple[DatasetSpec, ...] = (ARTICLES, OCCURRENCES, SEGMENTS, SPANS, DUPLICATES, FILES)
ALL_DATASETS: tuple[DatasetSpec, ...] = PUBLIC_DATASETS + (MINHASH_INDEX,)
