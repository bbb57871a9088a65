"""Where the tests find the repository, its reference seeds and ../shared (the evaluation data)."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SEEDS = REPO / "seeds"
SHARED = REPO.parent / "shared"
EVAL = SHARED / "eval"


def reference_seeds() -> list[Path]:
    """The five reference pages (only these: other tests may drop files into seeds/)."""
    files = sorted(SEEDS.glob("[0-9][0-9][0-9]_*.txt"))
    assert len(files) == 5, files
    return files
