"""Reference articles for the identity, minhash and dedupe tests: the seeds' articles read
with a deliberately simple parser (not the pipeline's segmenter), and small index builders."""

from __future__ import annotations

from datetime import datetime

import polars as pl

from tasks.steps.minhash import signatures_frame
from tests.paths import SEEDS

SEED_FILES = sorted(SEEDS.glob("*.txt"))


def parse_seed(text: str) -> tuple[tuple[str, str], list[tuple[str, str]]]:
    """(main, related): a related article is a line printed twice in a row (its title)
    followed by its next non-empty paragraph; the main article is line 0 + the rest up to
    the first related block."""
    lines = text.split("\n")
    doubled = [i for i in range(1, len(lines)) if lines[i].strip() and lines[i] == lines[i - 1]]
    related = [(lines[i], next(x for x in lines[i + 1 :] if x.strip())) for i in doubled]
    end = doubled[0] - 1 if doubled else len(lines)
    return (lines[0], "\n".join(lines[1:end])), related


def seed_articles() -> list[tuple[tuple[str, str], list[tuple[str, str]]]]:
    return [parse_seed(p.read_text(encoding="utf-8")) for p in SEED_FILES]


def main_text(i: int) -> str:
    title, body = seed_articles()[i][0]
    return title + "\n" + body


def change_words(text: str, positions: list[int], word: str = "zzchanged") -> str:
    words = text.split()
    for p in positions:
        words[p % len(words)] = word
    return " ".join(words)


def index_of(rows: list[tuple[str, datetime | None, str]]) -> tuple[pl.DataFrame, dict[str, str]]:
    """(index frame, texts mapping) from (id, published_at, text) rows."""
    ids, ts, texts = (list(x) for x in zip(*rows, strict=True)) if rows else ([], [], [])
    return signatures_frame(ids, ts, texts), dict(zip(ids, texts, strict=True))


def pl_schema(spec_schema) -> pl.Schema:
    return pl.from_arrow(spec_schema.empty_table()).schema
