"""tasks/steps/load.py: bytes -> decoded text, or a quarantine reason a person understands."""

from __future__ import annotations

import codecs
import os
import random
import zipfile
from io import BytesIO
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tasks.steps import load as load_module
from tasks.steps.load import (
    OversizedFile,
    QuarantineError,
    load_bytes,
    load_file,
    read_file_bytes,
    sha256_hex,
    too_many_controls,
)

TEXT = "上海 Shanghai — “Five Centers” 陈吉宁\nRelease time:May 17, 2024 17:21 PM\n\nThe city 上海 said so.\n"


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
        ("abc 中文".encode() + "中文".encode("big5") + b"\xff\xfe\xfd" * 50, "undecodable"),
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
    path = min(seeds_dir.glob("*.txt"))
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


# --- fault handling (issue #4) ---------------------------------------------------------


def test_every_reason_names_the_file() -> None:
    with pytest.raises(QuarantineError) as info:
        load_bytes(b"", "folder/new\nline.txt")
    assert info.value.reason.startswith(repr("folder/new\nline.txt"))


def test_mixed_encodings_in_one_file_are_named_with_the_line() -> None:
    data = "Title\n\n上海市人民政府 said so.\n".encode() + "北京市人民政府 said so.\n".encode("gb18030")
    with pytest.raises(QuarantineError, match="mixed encodings.*line 4"):
        load_bytes(data, "mixed.txt")


def test_gb18030_with_many_short_chinese_lines_is_not_mistaken_for_mixed() -> None:
    rng = random.Random(7)
    common = "的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也能下过子说产种面而方后多定行学法所民得经"
    lines = ["Title line", "", "Body paragraph."] + [
        "".join(rng.choice(common) for _ in range(rng.randint(1, 4))) + " ok" for _ in range(3000)
    ]
    text = "\n".join(lines) + "\n"
    loaded = load_bytes(text.encode("gb18030"), "gb.txt")
    assert loaded.encoding == "gb18030" and loaded.text == text


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"Only a title\n", "no body"),
        (b"Only a title\r\nRelease time:May 17, 2024 17:21 PM\r\n\r\n", "no body"),
        (b"Release time:May 17, 2024 17:21 PM\n\nBody without a title.\n", "no title"),
    ],
)
def test_pages_without_a_title_or_a_body_are_quarantined(data: bytes, words: str) -> None:
    with pytest.raises(QuarantineError, match=words):
        load_bytes(data, "shape.txt")


def test_a_page_of_only_related_articles_is_accepted() -> None:
    loaded = load_bytes(b"Rel title\nRel title\nSnippet...\n", "related.txt")
    assert loaded.encoding == "utf-8"


def test_files_above_the_limit_are_hashed_in_bounded_memory_and_quarantined(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("NEWSFLOW_MAX_FILE_BYTES", "1000")
    path = tmp_path / "big.txt"
    path.write_bytes(b"Title\n\n" + b"word " * 1000)
    data = read_file_bytes(path, "big.txt")
    assert isinstance(data, OversizedFile) and len(data) == path.stat().st_size
    assert sha256_hex(data) == sha256_hex(path.read_bytes())
    with pytest.raises(
        QuarantineError, match=r"too large: 5,007 bytes, above the limit of 1,000 bytes.*NEWSFLOW_MAX_FILE_BYTES"
    ):
        load_bytes(data, "big.txt")
    monkeypatch.setenv("NEWSFLOW_MAX_FILE_BYTES", "0")  # 0 = no limit
    assert load_file(path, tmp_path).n_bytes == 5007


def test_the_default_limit_is_8_mib(monkeypatch) -> None:
    monkeypatch.delenv("NEWSFLOW_MAX_FILE_BYTES", raising=False)
    assert load_module.max_file_bytes() == 8 * 1024 * 1024


def test_a_file_truncated_while_it_is_read_is_quarantined(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "page.txt"
    path.write_text(TEXT * 100)
    monkeypatch.setattr(load_module, "fault_point", lambda name: os.truncate(path, 10))
    with pytest.raises(QuarantineError, match="changed while the run was reading it"):
        read_file_bytes(path, "page.txt")


def test_a_file_that_disappears_is_quarantined(tmp_path: Path) -> None:
    with pytest.raises(QuarantineError, match="disappeared"):
        read_file_bytes(tmp_path / "gone.txt", "gone.txt")


def test_a_named_pipe_is_refused_without_blocking(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.txt")
    with pytest.raises(QuarantineError, match="named pipe"):
        load_file(tmp_path / "pipe.txt", tmp_path)


def test_a_symlinked_folder_on_the_path_is_never_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text(TEXT)
    root = tmp_path / "seeds"
    root.mkdir()
    (root / "linked").symlink_to(outside, target_is_directory=True)
    with pytest.raises(QuarantineError, match="'linked' on its path is a symbolic link"):
        load_file(root / "linked" / "secret.txt", root)


@pytest.mark.parametrize("name", ["../outside.txt", "a/../../b.txt", "/etc/passwd", "a//b.txt"])
def test_paths_that_are_not_plain_relative_names_are_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(QuarantineError, match="not a plain path"):
        read_file_bytes(tmp_path / name, name)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("ab \n\t\r中文\xa0°\x80\x85\x9f\x00\x07\x1b\x7fé€")), max_size=400))
def test_the_fast_control_check_of_utf8_pages_agrees_with_the_regex_count(text: str) -> None:
    # NBSP and "°" share the lead byte 0xC2 with the C1 controls: candidates, not controls.
    assert too_many_controls(text, text.encode("utf-8")) == too_many_controls(text)


def test_a_page_with_a_few_controls_passes_and_one_with_many_is_binary() -> None:
    page = "Title\n" + "word " * 400 + "\x07"
    assert not too_many_controls(page, page.encode())
    noisy = "Title\n" + "word\x1b " * 50
    assert too_many_controls(noisy, noisy.encode()) and too_many_controls(noisy)
