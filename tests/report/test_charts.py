"""tasks/report/charts.py: every chart draws, as SVG that loads nothing, with the same bytes
every time (in this process and another)."""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from flows.defaults import REPORT_RUNS as RUNS
from tasks.report import charts, history
from tasks.report.figures import Figures, compute
from tasks.report.page import KEY_CHARTS, TITLES
from tests.report.conftest import DataCase


@pytest.fixture(scope="module")
def drawn(case: DataCase) -> tuple[Figures, dict[str, bytes]]:
    fig = compute(case.data, None, history.read_records(case.data), history_runs=RUNS)
    return fig, charts.render(fig)


def test_every_chart_is_an_svg_that_loads_nothing(drawn: tuple[Figures, dict[str, bytes]]) -> None:
    _, svgs = drawn
    assert list(svgs) == list(charts.CHARTS) and set(charts.CHARTS) == set(TITLES)
    for chart_id, svg in svgs.items():
        root = ET.fromstring(svg)
        assert root.tag == "{http://www.w3.org/2000/svg}svg", chart_id
        # the only reference allowed is to an id inside the same document
        refs = re.findall(rb'(?:href|src)="([^"]*)"', svg)
        assert all(ref.startswith(b"#") for ref in refs), (chart_id, refs[:3])
        assert b"url(http" not in svg and b"@import" not in svg
        assert b"<dc:date>" not in svg and b"Matplotlib v" not in svg  # no date, no version


def test_the_same_figures_give_the_same_bytes(drawn: tuple[Figures, dict[str, bytes]]) -> None:
    fig, svgs = drawn
    assert charts.render(fig) == svgs


@pytest.mark.slow
def test_another_process_draws_the_same_bytes(seeds_case: DataCase) -> None:
    """Ids come from svg.hashsalt, not from the process; no date, no version."""
    fig = compute(seeds_case.data, None, history.read_records(seeds_case.data), history_runs=RUNS)
    code = (
        "import sys, hashlib; from tasks.report import charts, history; from tasks.report.figures import compute; "
        f"f = compute(sys.argv[1], None, history.read_records(sys.argv[1]), history_runs={RUNS}); "
        "print(hashlib.sha256(b''.join(charts.render(f).values())).hexdigest())"
    )
    out = subprocess.run([sys.executable, "-c", code, str(seeds_case.data)], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == hashlib.sha256(b"".join(charts.render(fig).values())).hexdigest()


def test_the_key_charts_alone() -> None:
    empty = Figures(data_dir="x", generated_at="now", totals=_zero_totals())
    assert list(charts.render(empty, KEY_CHARTS)) == [c for c in charts.CHARTS if c in KEY_CHARTS]  # in page order


def test_without_data_every_chart_says_so() -> None:
    empty = Figures(data_dir="x", generated_at="now", totals=_zero_totals())
    svgs = charts.render(empty)
    assert len(svgs) == len(charts.CHARTS)
    for chart_id in ("articles-per-month", "span-length", "paragraphs", "entities"):
        assert b"no data" in svgs[chart_id], chart_id
    assert b"no run recorded" in svgs["run-steps"] and b"no near-duplicates" in svgs["cluster-sizes"]


def test_text_stays_text_and_a_dollar_is_not_math() -> None:
    fig = Figures(data_dir="x", generated_at="now", totals=_zero_totals())
    fig.top_files = [{"source_file": "$5 a page_$x$.txt", "untranslated_chars": 9, "spans": 1, "langs": "ja"}]
    svg = charts.render(fig, ["top-untranslated-files"])["top-untranslated-files"]
    assert b"$5 a page_$x$.txt" in svg


def _zero_totals() -> dict[str, int]:
    keys = ("files", "files_processed", "files_quarantined", "occurrences", "articles", "near_duplicate_links")
    return dict.fromkeys(keys, 0) | {"spans": 0, "untranslated_share": 0.0}
