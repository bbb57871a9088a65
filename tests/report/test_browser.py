"""The report page in a real browser: Debian's headless Chromium (tests/cdp.py) renders it,
shows every chart (decoded, on screen), logs no console error and requests nothing but the
page itself and its data: images. A full-page screenshot of each is kept:
`.screenshots/report-<case>.png`, or with NEWSFLOW_SCREENSHOTS=docs the README's
`docs/report.png` (the corpus). Chromium missing is a failure that says so, never a skip:
.ci/run installs it."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from flows.defaults import REPORT_RUNS as RUNS
from tasks.report import charts, history
from tasks.report.figures import Figures, compute
from tasks.report.page import KEY_CHARTS, TITLES, render_card, render_html, render_markdown
from tests.cdp import Chromium, Page, find_chromium
from tests.paths import REPO
from tests.report.conftest import DataCase

pytestmark = pytest.mark.slow

FIGURES_JS = """[...document.querySelectorAll('figure[data-chart]')].map(f => {
    const img = f.querySelector('img'); const box = img.getBoundingClientRect();
    return {id: f.dataset.chart, complete: img.complete, naturalWidth: img.naturalWidth,
            width: box.width, height: box.height}; })"""


def screenshot_path(case: str) -> Path:
    if os.environ.get("NEWSFLOW_SCREENSHOTS") == "docs":
        return REPO / "docs" / "report.png" if case == "corpus" else REPO / ".screenshots" / f"report-{case}.png"
    return Path(os.environ.get("NEWSFLOW_SCREENSHOTS") or REPO / ".screenshots") / f"report-{case}.png"


@pytest.fixture(scope="module")
def browser() -> Iterator[Chromium]:
    if find_chromium() is None:
        pytest.fail("chromium is missing: the browser tests need Debian's chromium (apt-get install chromium; .ci/run)")
    with Chromium() as b:
        yield b


@pytest.fixture(scope="module")
def page_file(case: DataCase, tmp_path_factory: pytest.TempPathFactory) -> tuple[Figures, dict[str, bytes], Path]:
    fig = compute(
        case.data, None, history.read_records(case.data), now=datetime(2026, 1, 2, tzinfo=UTC), history_runs=RUNS
    )
    fig.data_dir = "data"  # the page as a clone's `data/` shows it (the screenshot does not name a temp folder)
    svgs = charts.render(fig)
    out = tmp_path_factory.mktemp(f"page-{case.name}") / "report.html"
    out.write_text(render_html(fig, svgs), encoding="utf-8")
    return fig, svgs, out


def no_outside_requests(page: Page) -> list[str]:
    return [u for u in page.requests if not u.startswith(("data:", "file:"))]


def test_the_page_shows_every_chart_and_no_error(
    case: DataCase, page_file: tuple[Figures, dict[str, bytes], Path], browser: Chromium
) -> None:
    fig, _, out = page_file
    page = browser.open(out.as_uri())
    shown = page.evaluate(FIGURES_JS)
    assert [f["id"] for f in shown] == list(TITLES)
    for f in shown:
        assert f["complete"] and f["naturalWidth"] > 0 and f["width"] > 100 and f["height"] > 100, f
    assert page.problems == []
    assert no_outside_requests(page) == []
    kpis = dict(
        page.evaluate(
            "[...document.querySelectorAll('[data-metric]')].map(k => [k.dataset.metric, k.querySelector('b').innerText])"
        )
    )
    assert kpis["articles"] == f"{fig.totals['articles']:,}" and kpis["spans"] == f"{fig.totals['spans']:,}"
    text = page.evaluate("document.body.innerText")
    for sample in fig.top_files[0]["samples"]:
        assert sample["text"][:20] in text  # the spans' own characters, as text
    shot = screenshot_path(case.name)
    shot.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(str(shot))
    assert shot.stat().st_size > 50_000
    shrink(shot)


def shrink(png: Path) -> None:
    """256 colours: a third of the bytes, and charts and text read the same (for the repository)."""
    from PIL import Image

    with Image.open(png) as image:
        small = image.convert("RGB").convert("P", palette=Image.Palette.ADAPTIVE, colors=256)
    small.save(png, optimize=True)


def test_the_markdown_artifacts_images_decode(
    page_file: tuple[Figures, dict[str, bytes], Path], browser: Chromium, tmp_path: Path
) -> None:
    """The markdown artifact's charts as the Prefect UI shows them: <img> of data URIs."""
    fig, svgs, _ = page_file
    md = render_markdown(fig, svgs, None, None) + render_card(svgs, changed=True)  # content and description
    uris = re.findall(r"!\[[^\]]*\]\((data:image/svg\+xml;base64,[A-Za-z0-9+/=]+)\)", md)
    assert len(uris) == len(KEY_CHARTS)
    f = tmp_path / "md.html"
    f.write_text("".join(f'<img src="{u}">' for u in uris), encoding="utf-8")
    page = browser.open(f.as_uri())
    widths = page.evaluate("Promise.all([...document.images].map(i => i.decode().then(() => i.naturalWidth)))")
    assert len(widths) == len(uris) and all(w > 0 for w in widths)


def test_the_checks_catch_a_broken_chart_and_a_network_load(
    page_file: tuple[Figures, dict[str, bytes], Path], browser: Chromium, tmp_path: Path
) -> None:
    """The checks above can fail: one chart corrupted, one image from the network."""
    _, _, out = page_file
    html = out.read_text(encoding="utf-8")
    bad = html.replace("<main>", '<main><img src="http://127.0.0.1:9/x.png">', 1)
    bad = re.sub(r'(data-chart="funnel">.*?src="data:image/svg\+xml;base64,)[A-Za-z0-9+/=]+', r"\1AAAA", bad, count=1)
    f = tmp_path / "bad.html"
    f.write_text(bad, encoding="utf-8")
    page = browser.open(f.as_uri())
    broken = [x["id"] for x in page.evaluate(FIGURES_JS) if x["naturalWidth"] == 0]
    assert broken == ["funnel"]
    assert any("Content Security Policy" in p for p in page.problems), page.problems  # refused, and said so
    assert no_outside_requests(page) == ["http://127.0.0.1:9/x.png"]  # tried: the request check sees it
