"""tasks/report/page.py: one self-contained page (nothing to load, a CSP that forbids
loading), the figures it embeds, the headline and markdown of the Prefect artifacts, escaping,
and the spans' glosses once the data has them."""

from __future__ import annotations

import base64
import html
import json
import re
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from flows.defaults import REPORT_RUNS as RUNS
from tasks.report import charts, history
from tasks.report.figures import GLOSS, Figures, compute
from tasks.report.page import (
    BODY_CHARTS,
    CARD_CHARTS,
    CSP,
    KEY_CHARTS,
    TITLES,
    headline_rows,
    render_card,
    render_html,
    render_markdown,
)
from tests.report.conftest import DataCase


@pytest.fixture(scope="module")
def built(case: DataCase) -> tuple[Figures, dict[str, bytes], str]:
    fig = compute(case.data, None, history.read_records(case.data), history_runs=RUNS)
    svgs = charts.render(fig)
    return fig, svgs, render_html(fig, svgs)


def embedded(page: str) -> dict:
    found = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', page, re.S)
    assert found is not None
    assert "<" not in found.group(1)
    return json.loads(found.group(1))


def test_the_page_needs_nothing_but_itself(built: tuple[Figures, dict[str, bytes], str]) -> None:
    fig, svgs, page = built
    assert f'<meta http-equiv="Content-Security-Policy" content="{CSP}">' in page
    assert "default-src 'none'" in CSP and "img-src data:" in CSP
    srcs = re.findall(r'\ssrc="([^"]*)"', page)
    assert len(srcs) == len(TITLES) and all(s.startswith("data:image/svg+xml;base64,") for s in srcs)
    for bad in ("<link", "<script src", "@import", "url(", "http://", "https://"):
        assert bad not in page.replace('xmlns="http://www.w3.org', ""), bad
    for chart_id, svg in svgs.items():
        shown = re.search(rf'data-chart="{chart_id}">.*?src="data:image/svg\+xml;base64,([^"]+)"', page)
        assert shown is not None and base64.b64decode(shown.group(1)) == svg
    assert embedded(page) == json.loads(fig.to_json())


def test_the_headline_shows_the_figures(built: tuple[Figures, dict[str, bytes], str]) -> None:
    fig, _, page = built
    rows = headline_rows(fig)
    assert len(rows) == 10  # the Prefect UI pages a table artifact by 10 rows
    by_measure = {r["measure"]: r for r in rows}
    assert by_measure["unique articles"]["in total"] == fig.totals["articles"]
    assert fig.run is not None and by_measure["files seen"]["this run"] == fig.run.files_seen
    assert by_measure["unchanged (skipped)"]["in total"] == ""
    kpis = dict(re.findall(r'data-metric="(\w+)"><b>([^<]*)</b>', page))
    assert kpis["articles"] == f"{fig.totals['articles']:,}" and kpis["files"] == f"{fig.totals['files']:,}"


def test_the_markdown_artifact_has_the_key_charts_and_where_the_page_is(
    built: tuple[Figures, dict[str, bytes], str],
) -> None:
    fig, svgs, _ = built
    md = render_markdown(fig, svgs, "http://127.0.0.1:4201/runs/x.html", "/srv/data/_reports/runs/x.html")
    images = re.findall(r"!\[[^\]]*\]\(data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)\)", md)
    assert [base64.b64decode(i) for i in images] == [svgs[c] for c in BODY_CHARTS]  # the card has the others
    assert "[Open the full report](http://127.0.0.1:4201/runs/x.html)" in md
    assert "`/srv/data/_reports/runs/x.html`" in md
    assert len(md.encode()) < 300_000  # one a run in Prefect's database
    assert "Open the full report" not in render_markdown(fig, svgs, None, None)


def test_the_artifact_card_says_what_it_is_then_shows_two_charts(built: tuple[Figures, dict[str, bytes], str]) -> None:
    _, svgs, _ = built
    first, *images = render_card(svgs, changed=True).split("\n\n")
    assert first == "Data-quality report: this run and the last runs"  # all that Prefect's v1 UI shows of it
    shown = [re.fullmatch(r"!\[[^\]]*\]\(data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)\)", i) for i in images]
    assert [base64.b64decode(m.group(1)) for m in shown if m] == [svgs[c] for c in CARD_CHARTS]
    assert render_card(svgs, changed=False).startswith(first + " (this run changed nothing)\n\n")
    assert set(CARD_CHARTS) | set(BODY_CHARTS) == set(KEY_CHARTS) and not set(CARD_CHARTS) & set(BODY_CHARTS)


def test_names_from_the_data_are_escaped() -> None:
    hostile = "<img src=x onerror=alert(1)>.txt"
    fig = Figures(
        data_dir="</script><script>alert(2)</script>",
        generated_at="now",
        totals=dict.fromkeys(
            (
                "files",
                "files_processed",
                "files_quarantined",
                "occurrences",
                "articles",
                "near_duplicate_links",
                "spans",
            ),
            0,
        )
        | {"untranslated_share": 0.0},
    )
    fig.top_files = [
        {
            "source_file": hostile,
            "untranslated_chars": 3,
            "spans": 1,
            "langs": "ja",
            "n_bytes": 9,
            "samples": [{"text": "<b>日本</b>", "pinyin": "<i>", "lang": "ja", "char_start": 0}],
        }
    ]
    page = render_html(fig, charts.render(fig))
    assert hostile not in page and html.escape(hostile) in page
    assert "<script>alert(2)" not in page and "<b>日本</b>" not in page
    assert embedded(page)["top_files"][0]["source_file"] == hostile  # the data itself, intact


def test_spans_glosses_show_on_the_page_and_older_data_without_them_is_said(
    seeds_case: DataCase, tmp_path: Path
) -> None:
    """Spans with their English gloss; a data folder written before the gloss columns (a
    partition without them, as after an upgrade) reads, and the page says so."""
    fig = compute(seeds_case.data, None, history.read_records(seeds_case.data), history_runs=RUNS)
    assert fig.has_gloss and fig.totals["spans"] == 9
    samples = fig.top_files[0]["samples"]
    assert all(s[GLOSS] for s in samples)
    page = render_html(fig, charts.render(fig, []) | {c: b"<svg/>" for c in TITLES})
    for s in samples:
        assert f"<i>{html.escape(s[GLOSS])}</i>" in page
    assert "and English gloss" in page

    data = tmp_path / "data"
    shutil.copytree(seeds_case.data, data)
    for partition in (data / "spans").rglob("*.parquet"):
        table = pq.read_table(partition)
        pq.write_table(table.drop_columns([c for c in table.column_names if c.startswith("gloss")]), partition)
    without = compute(data, None, [], history_runs=RUNS)
    page = render_html(without, {c: b"<svg/>" for c in TITLES})
    assert not without.has_gloss and "these spans have no gloss (a --full-refresh run adds it)" in page
