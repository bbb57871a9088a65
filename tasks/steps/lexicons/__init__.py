"""The word lists the enrichment steps read (entities, keywords, gloss), one text file each
in this folder: an entry a line, `#` starting a comment line."""

from __future__ import annotations

from pathlib import Path

FOLDER = Path(__file__).parent


def word_list(name: str) -> list[str]:
    """The entries of one word list, in file order, without blank and comment lines."""
    text = (FOLDER / name).read_text(encoding="utf-8")
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]
