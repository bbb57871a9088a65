"""bench.wmt23 on the real WMT23 zh->en MQM residue rows (read from ../shared)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.wmt23 import WMT23_TSV, evaluate_on_wmt23
from tests.paths import SHARED


def test_wmt23_span_recall_and_precision() -> None:
    if not (SHARED / WMT23_TSV).is_file():
        pytest.fail(f"WMT23 eval data missing: expected {SHARED / WMT23_TSV} (shared/ beside the repo)")
    report = evaluate_on_wmt23(SHARED)
    assert report["fragments"] >= 3 and report["annotated_cjk_chars"] > 0
    assert report["recall"] == 1.0
    assert report["precision"] >= 0.9, report


def test_missing_data_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        evaluate_on_wmt23(tmp_path)
