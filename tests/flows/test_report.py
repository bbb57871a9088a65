"""flows/report.py: the report after every run of the real ingest flow (pages, record, the
three Prefect artifacts), a run that changed nothing writing nothing, a failing report
that does not fail the run, `newsflow report` and the report server."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from uuid import UUID

import pytest
from prefect.client.orchestration import get_client

from flows import report as flow_report
from flows.ingest import ingest
from flows.settings import REPORT_PORT_ENV, report_port
from tasks.report import history
from tasks.storage.lock import data_dir_lock
from tasks.storage.stores import open_data_dir
from tests.conftest import tree_digest, without_manifest
from tests.prefect_server import free_port

pytestmark = pytest.mark.usefixtures("prefect_harness")
NEWSFLOW = str(Path(sys.executable).with_name("newsflow"))


def every_file(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under `folder`: its bytes and modification time (ns)."""
    return {
        p.relative_to(folder).as_posix(): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def artifacts_of(run_id: str) -> dict[str, list]:
    async def read() -> list:
        async with get_client() as client:
            return await client.read_artifacts()

    found: dict[str, list] = {}
    for a in asyncio.run(read()):
        if a.flow_run_id == UUID(run_id):
            found.setdefault(a.key, []).append(a)
    return found


@pytest.fixture(scope="module", autouse=True)
def report_on():
    """The report after every run, as outside the tests (tests/conftest.py switches it off)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(flow_report.SWITCH_ENV, "on")
        yield


@pytest.fixture(scope="module")
def reported(tmp_path_factory: pytest.TempPathFactory, prefect_harness) -> tuple[Path, Path, dict]:
    root = tmp_path_factory.mktemp("reported")
    seeds, data = root / "seeds", root / "data"
    shutil.copytree(Path(__file__).parents[2] / "seeds", seeds)
    summary = ingest(seeds_dir=str(seeds), data_dir=str(data))
    return seeds, data, summary


def test_a_run_writes_its_record_its_page_and_latest(reported) -> None:
    _, data, summary = reported
    run_id = summary["run_id"]
    reports = data / "_reports"
    assert sorted(p.relative_to(reports).as_posix() for p in reports.rglob("*")) == [
        "latest.html",
        "runs",
        f"runs/{run_id}.html",
        f"runs/{run_id}.json",
    ]
    assert (reports / "latest.html").read_bytes() == (reports / "runs" / f"{run_id}.html").read_bytes()
    (record,) = history.read_records(data)
    assert (record.run_id, record.files_seen, record.articles_new, record.spans) == (run_id, 5, 20, 9)
    assert 0 < record.seconds_to_commit < summary["wall_seconds"]
    assert record.step_seconds == pytest.approx(summary["step_seconds"])
    page = (reports / "latest.html").read_text(encoding="utf-8")
    assert page.count('<figure data-chart="') == 16 and run_id in page


def test_a_run_publishes_the_headline_the_key_charts_and_the_link(reported) -> None:
    _, data, summary = reported
    run_id = summary["run_id"]
    found = artifacts_of(run_id)
    (table,) = found[flow_report.TABLE_KEY]
    (markdown,) = found[flow_report.MARKDOWN_KEY]
    (link,) = found[flow_report.LINK_KEY]
    rows = {r["measure"]: r for r in json.loads(table.data)}
    assert len(rows) == 10 and rows["unique articles"]["in total"] == 20 and rows["files seen"]["this run"] == 5
    assert markdown.data.count("](data:image/svg+xml;base64,") == 2
    assert markdown.description.count("](data:image/svg+xml;base64,") == 2  # on the card in the Artifacts tab
    assert f"http://127.0.0.1:{report_port()}/runs/{run_id}.html" in link.data
    assert str((data / "_reports" / "runs" / f"{run_id}.html").absolute()) in markdown.data


def test_a_run_that_changes_nothing_writes_nothing_but_still_shows_its_numbers(reported) -> None:
    seeds, data, _ = reported
    before = every_file(data)
    summary = ingest(seeds_dir=str(seeds), data_dir=str(data))
    assert summary["files_unchanged"] == 5 and summary["partitions_written"] == 0
    assert every_file(data) == before  # bytes and modification times
    found = artifacts_of(summary["run_id"])
    assert set(found) >= {flow_report.TABLE_KEY, flow_report.MARKDOWN_KEY, flow_report.LINK_KEY}
    (table,) = found[flow_report.TABLE_KEY]
    assert {r["measure"]: r["this run"] for r in json.loads(table.data)}["unchanged (skipped)"] == 5
    (link,) = found[flow_report.LINK_KEY]
    assert f"http://127.0.0.1:{report_port()}/latest.html)" in link.data


def test_a_failing_report_is_one_warning_and_the_run_and_its_datasets_are_untouched(
    tmp_path: Path, seeds_copy: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    broken, plain = tmp_path / "broken", tmp_path / "plain"
    (broken / "_reports").mkdir(parents=True)
    (broken / "_reports" / "runs").write_text("a file where the report wants a folder")
    summary = ingest(seeds_dir=str(seeds_copy), data_dir=str(broken))
    assert summary["articles_new"] == 20
    warnings = [r for r in caplog.records if "data-quality report not published" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].levelname == "WARNING" and "\n" not in warnings[0].getMessage()
    monkeypatch.setenv(flow_report.SWITCH_ENV, "off")
    ingest(seeds_dir=str(seeds_copy), data_dir=str(plain))
    assert not (plain / "_reports").exists()
    assert without_manifest(tree_digest(broken)) == without_manifest(tree_digest(plain))


def test_a_full_refresh_keeps_the_reports_and_adds_its_record(reported) -> None:
    seeds, data, _ = reported
    runs_before = {p.name for p in (data / "_reports" / "runs").iterdir()}
    summary = ingest(seeds_dir=str(seeds), data_dir=str(data), full_refresh=True)
    runs_after = {p.name for p in (data / "_reports" / "runs").iterdir()}
    assert runs_before < runs_after and f"{summary['run_id']}.json" in runs_after
    assert [r.run_id for r in history.read_records(data)][-1] == summary["run_id"]


def test_the_report_never_takes_the_data_folders_lock(reported, tmp_path: Path) -> None:
    """A report after a run (or `newsflow report`) never holds up the next run: it writes
    while another run holds the data folder."""
    _, data, _ = reported
    copy = tmp_path / "data"
    shutil.copytree(data, copy)
    changed = history.RunRecord(run_id="r-later", started_at="2030-01-01T00:00:00+00:00", partitions_written=1)
    with data_dir_lock(copy):
        built, page = flow_report.report_after_run(copy, changed)
    assert page == "_reports/runs/r-later.html" and (copy / page).is_file()
    assert built.written == ["_reports/runs/r-later.json", "_reports/runs/r-later.html", "_reports/latest.html"]


def test_an_object_store_data_dir_gets_its_report_and_a_link_only_with_an_address(
    seeds_copy: Path, memory_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    summary = ingest(seeds_dir=str(seeds_copy), data_dir=memory_uri)
    store = open_data_dir(memory_uri)
    assert store.exists(history.LATEST_PAGE) and store.exists(history.record_path(summary["run_id"]))
    assert flow_report.LINK_KEY not in artifacts_of(summary["run_id"])  # a browser cannot open memory://
    monkeypatch.setenv(flow_report.URL_ENV, "https://reports.example/newsflow/")
    assert flow_report.report_url(memory_uri, history.LATEST_PAGE) == "https://reports.example/newsflow/latest.html"


@pytest.mark.slow  # child processes
def test_the_flow_imports_matplotlib_only_when_it_draws() -> None:
    code = "import sys, flows.ingest, flows.cli, flows.report; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_the_report_server_serves_the_pages_and_says_when_it_cannot(reported) -> None:
    _, data, _ = reported
    port = free_port()
    server = flow_report.report_server(data, port)
    try:
        import threading

        threading.Thread(target=server.serve_forever, daemon=True).start()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/latest.html", timeout=5) as r:
            assert r.status == 200 and r.read() == (data / "_reports" / "latest.html").read_bytes()
        said: list[str] = []
        os.environ[REPORT_PORT_ENV] = str(port)
        try:
            flow_report.serve_in_background(data, echo=said.append)  # the port is taken
        finally:
            del os.environ[REPORT_PORT_ENV]
        assert said and said[0].startswith("data-quality report pages not served: OSError")
    finally:
        server.shutdown()
        server.server_close()


# ---------------------------------------------------------------------------- newsflow report


def newsflow(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([NEWSFLOW, *args], capture_output=True, text=True, timeout=timeout)


def test_newsflow_report_refuses_bad_arguments_at_once_and_creates_nothing(tmp_path: Path) -> None:
    started = time.monotonic()
    missing = newsflow("report", "--data", str(tmp_path / "nothing"))
    assert missing.returncode == 2 and "holds no datasets yet" in missing.stderr
    assert not (tmp_path / "nothing").exists()
    (tmp_path / "d" / "files").mkdir(parents=True)
    bad_out = newsflow("report", "--data", str(tmp_path / "d"), "--out", str(tmp_path / "no" / "where.html"))
    assert bad_out.returncode == 2 and "--out" in bad_out.stderr
    assert time.monotonic() - started < 10  # no heavy import before the arguments are checked


@pytest.mark.slow
def test_newsflow_report_rebuilds_the_page_on_demand(reported, tmp_path: Path) -> None:
    _, data, _ = reported
    copy = tmp_path / "data"
    shutil.copytree(data, copy)
    (copy / "_reports" / "latest.html").unlink()
    done = newsflow("report", "--data", str(copy))
    assert done.returncode == 0, done.stderr
    assert "16 charts" in done.stdout and (copy / "_reports" / "latest.html").is_file()
    out = tmp_path / "elsewhere.html"
    before = every_file(copy)
    done = newsflow("report", "--data", str(copy), "--out", str(out), "--runs", "5")
    assert done.returncode == 0, done.stderr
    assert out.read_text(encoding="utf-8").count('<figure data-chart="') == 16
    assert every_file(copy) == before  # --out writes nothing under the data folder


@pytest.mark.slow
def test_newsflow_report_serve(reported, tmp_path: Path) -> None:
    _, data, _ = reported
    copy = tmp_path / "data"
    shutil.copytree(data, copy)
    port = free_port()
    proc = subprocess.Popen(
        [NEWSFLOW, "report", "--data", str(copy), "--serve", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/latest.html", timeout=2) as r:
                    assert r.status == 200 and b"newsflow data-quality report" in r.read()
                    break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.stderr else ""
                time.sleep(0.5)
    finally:
        proc.terminate()
        proc.wait(timeout=20)
