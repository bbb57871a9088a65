"""Benchmark and evaluation of newsflow: a corpus generator with ground truth, baselines,
quality scoring and the WMT23 span evaluation. It uses the pipeline's public functions only."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_ROOT = REPO / ".bench"  # corpora, runs and results (git-ignored)
