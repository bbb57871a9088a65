"""Bad input: one real `newsflow run` over the reference seeds plus every kind of bad or odd
file, generated on the fly. Each bad file gets a `quarantined` manifest row whose reason
names the file and the problem (and what to do), the original is left untouched, and the
run goes on with the other files. A file is truncated and another deleted *while the run
reads them*: the run pauses at the `read` checkpoint (NEWSFLOW_PAUSE_AT) while the test
changes the folder, then goes on.
"""

from __future__ import annotations

import codecs
import hashlib
import os
import re
import stat
import zipfile
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

import polars as pl
import pytest

from tasks.schema import FILES, STATUS_PROCESSED, STATUS_QUARANTINED, C
from tests.faults.harness import (
    STATS,
    child_env,
    copy_seeds,
    finish,
    read_polars,
    snapshot,
    start,
    wait_for_path,
)
from tests.paths import SEEDS

pytestmark = [pytest.mark.faults, pytest.mark.timeout(600)]

SEED_000 = (SEEDS / "000_679cc89de41e4925.txt").read_text(encoding="utf-8")
SEED_003 = (SEEDS / "003_cdf2a856273f76b8.txt").read_text(encoding="utf-8")
OUTSIDE_MARKER = "SECRET-OUTSIDE-THE-SEEDS-FOLDER"
PATHY_TEXT = "../../etc/passwd year=../../x source_bucket=/tmp/evil"


def _page(title: str, body: str) -> str:
    return f"{title}\nRelease time:May 17, 2024 17:21 PM\n\n{body}\n"


def _zip() -> bytes:
    buf = BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("page.txt", SEED_000)
    return buf.getvalue()


def _png() -> bytes:
    return b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4


@dataclass(frozen=True)
class Case:
    name: str  # path relative to the seeds folder (str, or bytes for a non-UTF-8 name)
    expect: str  # processed | quarantined | ignored (no manifest row)
    words: tuple[str, ...] = ()  # must appear in the reason (case-insensitive)
    encoding: str | None = None  # expected manifest encoding of a processed file
    note: str = ""


# (case, content bytes or a builder keyword)
CASES: list[tuple[Case, bytes | str]] = [
    (Case("bad/empty.txt", "quarantined", ("empty", "0 bytes")), b""),
    (Case("bad/only whitespace.txt", "quarantined", ("whitespace",)), b"  \n\n\t \r\n"),
    (Case("bad/photo.txt", "quarantined", ("binary", "PNG image")), _png()),
    (Case("bad/archive.txt", "quarantined", ("binary", "ZIP archive")), _zip()),
    (
        Case("bad/random-bytes.txt", "quarantined", ("undecodable", "UTF-8")),
        bytes((i * 131 + 7) % 128 + 128 for i in range(4000)),
    ),
    (
        Case("bad/mixed-encodings.txt", "quarantined", ("mixed encodings", "line 5")),
        _page("Mixed page", "First paragraph 上海市 in UTF-8.").encode("utf-8")
        + "Second 北京市人民政府 in GB18030.\n".encode("gb18030"),
    ),
    (
        Case("bad/nul-bytes.txt", "quarantined", ("NUL bytes",)),
        SEED_000.encode()[:500] + b"\x00\x00\x01\x00" + SEED_000.encode()[500:],
    ),
    (
        Case("bad/control-chars.txt", "quarantined", ("control characters",)),
        (SEED_000[:200] + "\x01\x02\x03\x04\x1b\x7f" * 200).encode(),
    ),
    (
        Case("bad/utf16-broken.txt", "quarantined", ("byte-order mark", "utf-16")),
        codecs.BOM_UTF16_LE + "Title\n\nBody".encode("utf-16-le") + b"\x00\xd8",
    ),
    (
        Case("bad/title-only.txt", "quarantined", ("no body", "title")),
        b"Shanghai signs an agreement\nRelease time:May 17, 2024 17:21 PM\n",
    ),
    (
        Case("bad/no-title.txt", "quarantined", ("no title", "Release time")),
        b"Release time:May 17, 2024 17:21 PM\n\nThe body of a page without a title.\n",
    ),
    (Case("bad/fifo.txt", "quarantined", ("named pipe",)), "fifo"),
    (Case("bad/folder.txt", "quarantined", ("directory",)), "dir"),
    (Case("bad/link-out.txt", "quarantined", ("symbolic link",)), "symlink-out"),
    (Case("bad/link-in.txt", "quarantined", ("symbolic link",)), "symlink-in"),
    (Case("bad/linkdir.txt", "quarantined", ("symbolic link",)), "symlink-dir"),
    (
        Case(
            b"bad/name-\xff\xfe.txt".decode("utf-8", "backslashreplace"), "quarantined", ("not valid UTF-8", "rename")
        ),
        "bad-name",
    ),
    (Case("bad/too-big-200MB.txt", "quarantined", ("too large", "NEWSFLOW_MAX_FILE_BYTES", "8,388,608")), "big"),
    (Case("bad/one-line-50MB.txt", "quarantined", ("too large", "NEWSFLOW_MAX_FILE_BYTES")), "long-line"),
    (Case("!!truncated-while-read.txt", "quarantined", ("changed while the run was reading",)), SEED_003.encode()),
    (
        Case("0-deleted-while-running.txt", "quarantined", ("disappeared",)),
        SEED_000.replace("Shanghai", "Pudong", 3).encode(),
    ),
    # valid input in every supported encoding, odd but harmless content, odd names
    (Case("ok/utf16-bom.txt", "processed", encoding="utf-16"), SEED_003.encode("utf-16")),
    (Case("ok/utf16le-no-bom.txt", "processed", encoding="utf-16-le"), SEED_003.encode("utf-16-le")),
    (Case("ok/utf16be-no-bom.txt", "processed", encoding="utf-16-be"), SEED_003.encode("utf-16-be")),
    (Case("ok/gb18030.txt", "processed", encoding="gb18030"), SEED_003.encode("gb18030")),
    (
        Case("ok/utf8-bom crlf.txt", "processed", encoding="utf-8-sig"),
        codecs.BOM_UTF8 + SEED_003.replace("\n", "\r\n").encode(),
    ),
    (
        Case("ok/only-related-block.txt", "processed", encoding="utf-8"),
        b"Related one title\nRelated one title\nA snippet of the first related article...\n\nRelated two title\nRelated two title\nAnother snippet...\n",
    ),
    (
        Case("ok/one long line 1MB.txt", "processed", encoding="utf-8"),
        ("Long line page\n\n" + "The district office reported steady progress on the plan. " * 18000 + "\n").encode(),
    ),
    (
        Case("ok/a few control chars.txt", "processed", encoding="utf-8"),
        SEED_000.replace("Shanghai", "Shang\x07hai", 1).encode(),
    ),
    (
        Case("ok/path-like text.txt", "processed", encoding="utf-8"),
        _page(f"Title {PATHY_TEXT}", f"Body mentions {PATHY_TEXT} and C:\\Windows\\x.").encode(),
    ),
    (Case("ok/with spaces in name.txt", "processed", encoding="utf-8"), SEED_000.encode()),
    (Case("ok/上海新闻.txt", "processed", encoding="utf-8"), SEED_000.encode()),
    (Case("ok/new\nline.txt", "processed", encoding="utf-8"), SEED_000.encode()),
    # ignored by design: hidden, partial downloads, editor backups; a symlinked folder is not entered
    (Case(".hidden.txt", "ignored"), SEED_000.encode()),
    (Case("ok/download.txt.part", "ignored"), SEED_000.encode()),
    (Case("ok/backup.txt~", "ignored"), SEED_000.encode()),
    (
        Case("linked-folder/stolen.txt", "ignored", note="inside a symlinked folder pointing outside"),
        "via-linked-folder",
    ),
]


def _write_big(path: Path, total: int, line: bool) -> None:
    """A real text file of `total` bytes (pages, or one line), written in chunks."""
    chunk = (
        ("The municipal government said the plan will improve services. " * 1000).encode()
        if line
        else (SEED_000 + "\n").encode()
    )
    with open(path, "wb") as fh:
        if line:
            fh.write(b"A title\n\n")
        written = 0
        while written < total:
            fh.write(chunk)
            written += len(chunk)
        fh.write(b"\n")


def _build(root: Path, outside: Path) -> dict[str, str]:
    """Create every case under `root`; return sha256 of every regular file outside and in."""
    (outside / "secret.txt").write_text(_page("Outside title", OUTSIDE_MARKER))
    (outside / "folder").mkdir()
    (outside / "folder" / "stolen.txt").write_text(_page("Stolen title", OUTSIDE_MARKER))
    copy_seeds(root)
    for case, content in CASES:
        path = root / case.name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        elif content == "fifo":
            os.mkfifo(path)
        elif content == "dir":
            path.mkdir()
            (path / "inner.md").write_text("not matched")
        elif content == "symlink-out":
            path.symlink_to(outside / "secret.txt")
        elif content == "symlink-in":
            path.symlink_to(root / "000_679cc89de41e4925.txt")
        elif content == "symlink-dir":
            path.symlink_to(outside / "folder", target_is_directory=True)
        elif content == "via-linked-folder":
            path.parent.rmdir()
            path.parent.symlink_to(outside / "folder", target_is_directory=True)
        elif content == "bad-name":
            raw = os.path.join(os.fsencode(root / "bad"), b"name-\xff\xfe.txt")
            with open(raw, "wb") as fh:
                fh.write(SEED_000.encode())
        elif content == "big":
            _write_big(path, 200 * 1024 * 1024, line=False)
        elif content == "long-line":
            _write_big(path, 50 * 1024 * 1024, line=True)
        else:
            raise AssertionError(content)
    return _digests(root) | _digests(outside)


def _digests(folder: Path) -> dict[str, str]:
    out = {}
    for dirpath, _dirs, files in os.walk(os.fsencode(folder)):
        for f in files:
            p = os.path.join(dirpath, f)
            if os.path.islink(p) or not os.path.isfile(p):
                continue
            h = hashlib.sha256()
            with open(p, "rb") as fh:
                while chunk := fh.read(1 << 20):
                    h.update(chunk)
            out[os.fsdecode(p)] = h.hexdigest()
    return out


@pytest.fixture(scope="module")
def bad_run(suite_env, tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("bad-input")
    seeds, outside, data = root / "seeds", root / "outside", root / "data"
    seeds.mkdir()
    outside.mkdir()
    before = _digests(seeds) | _build(seeds, outside)
    pause = root / "paused"
    env = child_env(suite_env, NEWSFLOW_PAUSE_AT="read:!!truncated-while-read.txt:1", NEWSFLOW_PAUSE_FILE=str(pause))
    proc = start(["run", "--seeds", str(seeds), "--data", str(data)], env, root / "logs", "bad-input")
    try:
        # The run has opened "!!truncated-while-read.txt" and not read it yet; "0-deleted-..."
        # sorts after it in the same batch (same process), so it is not opened yet.
        wait_for_path(Path(str(pause) + ".reached"), 240, proc, "the run reaching its first file read")
        os.truncate(seeds / "!!truncated-while-read.txt", 1000)
        (seeds / "0-deleted-while-running.txt").unlink()
        pause.touch()
    finally:
        result = finish(proc, timeout=400)
    assert result.returncode == 0, result.describe()
    files = read_polars(data, FILES)
    # the two files changed on purpose during the run
    before = {k: v for k, v in before.items() if "while-r" not in k}
    return seeds, outside, data, files, before, result


def _row(files: pl.DataFrame, name: str) -> dict:
    rows = files.filter(pl.col(C.source_file) == name).to_dicts()
    assert len(rows) == 1, f"{name!r}: expected one manifest row, found {len(rows)}"
    return rows[0]


@pytest.mark.parametrize(("case", "content"), CASES, ids=[re.sub(r"\W+", "-", c.name) for c, _ in CASES])
def test_each_input_gets_the_decided_outcome(bad_run, case: Case, content) -> None:
    _, _, _data, files, _, _ = bad_run
    if case.expect == "ignored":
        assert files.filter(pl.col(C.source_file) == case.name).height == 0
        return
    row = _row(files, case.name)
    assert row[C.status] == case.expect, row
    if case.expect == STATUS_QUARANTINED:
        reason = row[C.reason] or ""
        assert repr(case.name) in reason, f"the reason must name the file: {reason}"
        for word in case.words:
            assert word.lower() in reason.lower(), f"{word!r} not in {reason!r}"
    else:
        assert row[C.reason] is None
        assert row[C.encoding] == case.encoding
        assert row[C.source_sha256] and row[C.n_bytes] > 0


def test_inputs_are_counted_for_the_summary(bad_run) -> None:
    _, _, _, files, _, _ = bad_run
    quarantined = files.filter(pl.col(C.status) == STATUS_QUARANTINED).height
    processed = files.filter(pl.col(C.status) == STATUS_PROCESSED).height
    assert quarantined == sum(c.expect == "quarantined" for c, _ in CASES)
    assert processed == 5 + sum(c.expect == "processed" for c, _ in CASES)
    STATS.inputs_tried += len(CASES)
    STATS.quarantined += quarantined
    STATS.processed += processed - 5
    STATS.ignored += sum(c.expect == "ignored" for c, _ in CASES)


def test_originals_are_left_untouched(bad_run) -> None:
    seeds, outside, _, _, before, _ = bad_run
    after = {k: v for k, v in (_digests(seeds) | _digests(outside)).items() if "while-r" not in k}
    assert after == before


def test_nothing_outside_the_seeds_folder_is_read(bad_run) -> None:
    _, _, data, files, _, _ = bad_run
    frames = snapshot(data)
    for name, frame in frames.items():
        for col, dtype in frame.schema.items():
            if dtype == pl.String:
                assert not frame.get_column(col).str.contains(OUTSIDE_MARKER).any(), (
                    f"{name}.{col} holds text from outside the seeds folder"
                )
    assert not files.filter(pl.col(C.source_file).str.contains("stolen")).height


def test_the_valid_encodings_give_the_same_rows_as_the_utf8_original(bad_run) -> None:
    _, _, data, _, _, _ = bad_run
    spans = snapshot(data)["spans"]
    original = (
        spans.filter(pl.col(C.source_file) == "003_cdf2a856273f76b8.txt")
        .select(C.char_start, C.char_end, C.text, C.lang)
        .sort(C.char_start)
    )
    assert original.height > 0
    for name in ("ok/utf16-bom.txt", "ok/utf16le-no-bom.txt", "ok/utf16be-no-bom.txt", "ok/gb18030.txt"):
        copy = (
            spans.filter(pl.col(C.source_file) == name)
            .select(C.char_start, C.char_end, C.text, C.lang)
            .sort(C.char_start)
        )
        assert copy.equals(original), name


def test_no_document_text_ever_becomes_a_path(bad_run) -> None:
    _, _, data, _, _, _ = bad_run
    allowed = re.compile(
        r"^(articles/year=(\d{4}|unknown)/month=(\d{2}|unknown)"
        r"|(occurrences|segments|spans)/source_bucket=\d{2}"
        r"|duplicates/method=minhash_jaccard|files/status=(processed|quarantined)|_index/minhash_v3)/part-0\.parquet$"
        # the data-quality report: pages and records named by run id (a UUID), never by a document
        r"|^_reports/(latest\.html|runs/[0-9a-f-]{36}\.(html|json))$"
    )
    paths = [p.relative_to(data).as_posix() for p in data.rglob("*") if p.is_file()]
    assert paths and all(allowed.match(p) for p in paths), [p for p in paths if not allowed.match(p)]


def test_the_run_reports_quarantined_files_and_goes_on(bad_run) -> None:
    _, _, data, _files, _, result = bad_run
    quarantined = result.stdout.split("Quarantined files", 1)[1]
    assert "  bad/empty.txt: 'bad/empty.txt': the file is empty" in quarantined
    assert snapshot(data)["articles"].height > 20  # the good files went through
    STATS.rss_mb["bad-input run: 37 inputs incl. 200 MB file, 50 MB line (process tree)"] = result.max_rss_mb
    STATS.wall_s["bad-input run"] = result.wall_seconds
    assert result.max_rss_mb < 2048


def test_fifo_did_not_block_and_is_still_a_fifo(bad_run) -> None:
    seeds, _, _, _, _, _ = bad_run
    assert stat.S_ISFIFO(os.lstat(seeds / "bad/fifo.txt").st_mode)
