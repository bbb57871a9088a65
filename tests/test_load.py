"""tasks/load.py: bytes -> decoded text, or a quarantine reason a person understands."""

from __future__ import annotations

import codecs
import zipfile
from io import BytesIO
from pathlib import Path

import pytest

from tasks.load import QuarantineError, load_bytes, load_file

TEXT = "上海 Shanghai — “Five Centers” 陈吉宁\nRelease time:May 17, 2024 17:21 PM\n"


@pytest.mark.parametrize(
    ("data", "encoding"),
    [
        (TEXT.encode("utf-8"), "utf-8"),
        (codecs.BOM_UTF8 + TEXT.encode("utf-8"), "utf-8-sig"),
        (TEXT.encode("utf-16"), "utf-16"),  # with BOM
        (TEXT.encode("utf-16-le"), "utf-16-le"),  # without BOM
        (TEXT.encode("utf-16-be"), "utf-16-be"),
        (TEXT.encode("gb18030"), "gb18030"),
    ],
)
def test_every_supported_encoding_decodes_to_the_same_text(data: bytes, encoding: str) -> None:
    loaded = load_bytes(data, "page.txt")
    assert loaded.text == TEXT
    assert loaded.encoding == encoding
    assert loaded.n_bytes == len(data)
    assert len(loaded.sha256) == 64


def test_crlf_is_kept_so_offsets_point_into_the_decoded_file() -> None:
    loaded = load_bytes(TEXT.replace("\n", "\r\n").encode(), "crlf.txt")
    assert "\r\n" in loaded.text


def _png() -> bytes:
    return b"\x89PNG\r\n\x1a\n" + bytes(range(256))


def _zip() -> bytes:
    buf = BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("a.txt", "hello")
    return buf.getvalue()


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"", "empty"),
        (b"  \n\n\t ", "only whitespace"),
        (_png(), "PNG image"),
        (_zip(), "ZIP archive"),
        (b"text\x00with\x00nul bytes in it and more words", "NUL bytes"),
        ("abc 中文".encode("utf-8") + "中文".encode("big5") + b"\xff\xfe\xfd" * 50, "undecodable"),
        (bytes(range(1, 32)) * 20, "control characters"),
    ],
)
def test_bad_input_is_quarantined_with_a_reason_naming_the_file(data: bytes, words: str) -> None:
    with pytest.raises(QuarantineError) as info:
        load_bytes(data, "bad/input.txt")
    assert info.value.source_file == "bad/input.txt"
    assert words in info.value.reason
    assert "bad/input.txt" in str(info.value)


def test_load_file_records_path_relative_to_the_seeds_root(seeds_dir: Path) -> None:
    path = sorted(seeds_dir.glob("*.txt"))[0]
    loaded = load_file(path, seeds_dir)
    assert loaded.source_file == path.name
    assert loaded.encoding == "utf-8"
    assert loaded.text == path.read_text(encoding="utf-8")


def test_symlinks_and_directories_are_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("secret")
    root = tmp_path / "seeds"
    root.mkdir()
    (root / "link.txt").symlink_to(outside)
    (root / "folder.txt").mkdir()
    with pytest.raises(QuarantineError, match="symbolic link"):
        load_file(root / "link.txt", root)
    with pytest.raises(QuarantineError, match="not a regular file"):
        load_file(root / "folder.txt", root)
