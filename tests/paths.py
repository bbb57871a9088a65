"""Where the tests find the repository, its reference seeds and ../shared (the evaluation data)."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SEEDS = REPO / "seeds"
SHARED = REPO.parent / "shared"
EVAL = SHARED / "eval"
