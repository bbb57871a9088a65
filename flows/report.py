"""The data-quality report: after every run (`publish_report`, called by the ingest flow
after its commit) and on demand (`newsflow report`, `report_command`).

After a run that changed the datasets (one report writer at a time: `history.writing`):

    _reports/runs/<run_id>.json   the run's record (tasks/report/history.py)
    _reports/runs/<run_id>.html   its report page
    _reports/latest.html          the same page, the stable address

then three Prefect artifacts on the run: `report-headline` (table: the headline numbers),
`report-summary` (markdown: the key charts as data-URI SVG images, which the UI renders:
two in its description, which the v2 UI shows on the artifact's card in the run's Artifacts
tab and both UIs above the content on its page; the headline, the link and two more in
its content) and `report-page` (link: the full page as served over http, see
`report_url`). A run that committed nothing writes nothing under the data folder: it
publishes the artifacts only, from the datasets as they are. A report that fails logs one
warning line; the run goes on and its datasets are never touched.

Prefect and matplotlib are imported only where they are used: `newsflow report` needs no
Prefect, and a run imports matplotlib (~1 s) only when it draws.
"""

from __future__ import annotations

import functools
import http.server
import importlib
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from flows import defaults as d
from flows.settings import report_port
from tasks.pipeline.summary import RunSummary
from tasks.report import history
from tasks.report.figures import Figures, compute
from tasks.report.page import KEY_CHARTS, headline_rows, render_card, render_html, render_markdown
from tasks.storage.stores import ArrowDir, DataDirLike, LocalDir, open_data_dir

TABLE_KEY, MARKDOWN_KEY, LINK_KEY = "report-headline", "report-summary", "report-page"
# `off`: no report after runs (the benchmark's A/B compares the pipeline with and without
# Prefect; the report is neither).
SWITCH_ENV = "NEWSFLOW_REPORT"
URL_ENV = "NEWSFLOW_REPORT_URL"


@dataclass
class Built:
    """A report: its figures, its charts, the files written and what each part took."""

    figures: Figures
    charts: dict[str, bytes]
    page: str = ""  # the HTML, when every chart was drawn
    written: list[str] = field(default_factory=list)  # relative to the data dir
    seconds: dict[str, float] = field(default_factory=dict)

    def timing(self) -> str:
        return ", ".join(f"{k} {v:.2f} s" for k, v in self.seconds.items())


def build(
    data: DataDirLike,
    run: history.RunRecord | None,
    records: list[history.RunRecord],
    charts: Sequence[str] | None = None,
    runs: int = d.REPORT_RUNS,
) -> Built:
    """Figures, charts (all, or only `charts`) and, with all of them, the page."""
    t0 = time.perf_counter()
    figures = compute(data, run, records, history_runs=runs)
    t1 = time.perf_counter()
    from tasks.report import charts as drawing  # matplotlib: only when drawing

    t2 = time.perf_counter()
    drawn = drawing.render(figures, charts)
    t3 = time.perf_counter()
    built = Built(figures, drawn, render_html(figures, drawn) if charts is None else "")
    built.seconds = {"figures": t1 - t0, "import": t2 - t1, "charts": t3 - t2, "page": time.perf_counter() - t3}
    return built


# ---------------------------------------------------------------------------- after a run


def load_drawing_in_background() -> None:
    """Import the drawing code (matplotlib, ~0.8 s) in a thread while the run works: the
    report after the commit then starts drawing at once. Nothing when the report is off."""
    if os.environ.get(SWITCH_ENV, "").lower() != "off":
        threading.Thread(target=importlib.import_module, args=("tasks.report.charts",), daemon=True).start()


def publish_report(summary: RunSummary, data: DataDirLike) -> None:
    """The run's report pages and artifacts (from the flow, after the commit). Never fails
    the run: a failure is one warning line."""
    if os.environ.get(SWITCH_ENV, "").lower() == "off":
        return
    from prefect import get_run_logger

    logger = get_run_logger()
    try:
        store = open_data_dir(data)
        record = history.record_for(summary, _flow_started_at(summary), _flow_run_name())
        built, page = report_after_run(store, record)
        t = time.perf_counter()
        published = _publish_artifacts(built, store, record, page)
        built.seconds["artifacts"] = time.perf_counter() - t
    except Exception as exc:  # the report is never a reason for a run to fail
        logger.warning("data-quality report not published: %s", _one_line(exc))
        return
    wrote = ", ".join(built.written) if built.written else "nothing under the data folder (no change)"
    logger.info("data-quality report: wrote %s; artifacts %s; %s", wrote, ", ".join(published), built.timing())


def report_after_run(data: DataDirLike, record: history.RunRecord) -> tuple[Built, str | None]:
    """The run's report, and the page its link shows (relative to the data dir). A run that
    changed the datasets writes its record and pages; one that did not writes nothing.

    The datasets are read without the data folder's lock (a report never holds up the
    next run): their files are replaced whole, so a run committing at that moment can at
    worst mix before and after in these figures, which the next report puts right."""
    store = open_data_dir(data)
    if not record.changed_datasets:
        built = build(store, record, history.read_records(store), KEY_CHARTS)
        return built, history.LATEST_PAGE if store.exists(history.LATEST_PAGE) else None
    with history.writing(store):
        built = write_run_report(store, record)
    return built, history.page_path(record.run_id)


def write_run_report(data: DataDirLike, record: history.RunRecord) -> Built:
    """Record, page of the run, latest.html; then the oldest pages and records beyond the
    bounds deleted. Called by the one report writer (`history.writing`)."""
    store = open_data_dir(data)
    history.remove_temp_files(store)  # of a report write cut short
    written = [history.write_record(store, record)]
    records = history.read_records(store)
    built = build(store, record, records)
    t = time.perf_counter()
    page = built.page.encode("utf-8")
    for rel in (history.page_path(record.run_id), history.LATEST_PAGE):
        history.write_file(store, rel, page)
        written.append(rel)
    history.prune(store, records, history.RUN_PAGES_KEPT, history.RUN_RECORDS_KEPT)
    built.written = written
    built.seconds["write"] = time.perf_counter() - t
    return built


def _publish_artifacts(
    built: Built, store: LocalDir | ArrowDir, record: history.RunRecord, page: str | None
) -> list[str]:
    """The table, markdown and (when the page has an address) link artifacts of the run."""
    from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact

    data = open_data_dir(store)
    url = report_url(data, page) if page else None
    location = page_location(data, page) if page else None
    create_table_artifact(
        key=TABLE_KEY,
        table=headline_rows(built.figures),
        description="Data-quality report: the headline numbers, this run and the datasets in total",
    )
    create_markdown_artifact(
        key=MARKDOWN_KEY,
        markdown=render_markdown(built.figures, built.charts, url, location),
        description=render_card(built.charts, record.changed_datasets),
    )
    published = [TABLE_KEY, MARKDOWN_KEY]
    if url:
        create_link_artifact(
            key=LINK_KEY, link=url, link_text="the full data-quality report", description=f"The report page: {location}"
        )
        published.append(LINK_KEY)
    return published


def _flow_started_at(summary: RunSummary) -> datetime:
    """When the flow run started (its run context's start), else now less its time to commit."""
    from prefect.context import FlowRunContext

    ctx = FlowRunContext.get()
    if ctx is not None and ctx.start_time is not None:
        return datetime.fromtimestamp(ctx.start_time.timestamp(), UTC)
    return datetime.now(UTC) - timedelta(seconds=summary.timeline.get("committed", 0.0))


def _flow_run_name() -> str:
    from prefect.runtime import flow_run

    return str(flow_run.name or "")


def _one_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"


# ---------------------------------------------------------------------------- where the page is


def report_url(data: DataDirLike, rel: str) -> str | None:
    """Where a browser opens a report file (`rel`, relative to the data dir): under
    NEWSFLOW_REPORT_URL when set (the `_reports/` folder served anywhere: a web server,
    a bucket's website), else on the report server of `newsflow serve` / `newsflow report
    --serve` for a local data folder. None for a remote folder without an address: the UI
    cannot open `file://` or `s3://` links."""
    under_reports = rel.removeprefix(history.REPORTS_DIR + "/")
    base = os.environ.get(URL_ENV)
    if not base:
        if not isinstance(open_data_dir(data), LocalDir):
            return None
        base = f"http://{d.REPORT_HOST}:{report_port()}"
    return f"{base.rstrip('/')}/{under_reports}"


def page_location(data: DataDirLike, rel: str) -> str:
    store = open_data_dir(data)
    return str(Path(store.full(rel)).absolute()) if isinstance(store, LocalDir) else store.full(rel)


class _Quiet(http.server.SimpleHTTPRequestHandler):
    """Files of the reports folder, without a log line per request."""

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (the base class's name)
        pass


def report_server(data: DataDirLike, port: int) -> http.server.ThreadingHTTPServer:
    """An http server of `<data>/_reports` on 127.0.0.1 (not started). The folder may not
    exist yet: it is looked up on every request, and serving creates nothing."""
    store = open_data_dir(data)
    if not isinstance(store, LocalDir):
        raise ValueError(f"{store.uri} is not a local folder: serve its _reports/ with any web server")
    folder = str((store.root / history.REPORTS_DIR).absolute())
    handler = functools.partial(_Quiet, directory=folder)
    return http.server.ThreadingHTTPServer((d.REPORT_HOST, port), handler)


def serve_in_background(data: DataDirLike, echo: Callable[[str], None] = print) -> None:
    """The report server for `newsflow serve`, on a daemon thread; a port in use or a
    remote data folder is said and skipped."""
    try:
        server = report_server(data, report_port())
    except (OSError, ValueError) as exc:
        echo(f"data-quality report pages not served: {_one_line(exc)}")
        return
    threading.Thread(target=server.serve_forever, name="report-server", daemon=True).start()
    echo(f"data-quality report pages: http://{d.REPORT_HOST}:{server.server_address[1]}/latest.html")


# ---------------------------------------------------------------------------- on demand


def report_command(data: str, out: Path | None, runs: int, echo: Callable[[str], None] = print) -> Path | str:
    """`newsflow report`: the report of the datasets as they stand and the last recorded
    run, to `out` or to `<data>/_reports/latest.html`."""
    store = open_data_dir(data)
    if out is not None:
        built = build(store, None, history.read_records(store), runs=runs)
        t = time.perf_counter()
        LocalDir(out.parent).write_atomic(out.name, _writer(built.page.encode("utf-8")), history.WRITE_POINT)
        built.seconds["write"] = time.perf_counter() - t
        where: Path | str = out
    else:
        with history.writing(store):
            history.remove_temp_files(store)
            built = build(store, None, history.read_records(store), runs=runs)
            t = time.perf_counter()
            history.write_file(store, history.LATEST_PAGE, built.page.encode("utf-8"))
            built.seconds["write"] = time.perf_counter() - t
        where = page_location(store, history.LATEST_PAGE)
    echo(f"wrote {where} ({len(built.charts)} charts, {len(built.page) / 1e3:.0f} KB; {built.timing()})")
    return where


def _writer(content: bytes) -> Callable[[str], None]:
    def write(path: str) -> None:
        Path(path).write_bytes(content)

    return write
