"""Step 1 — load: bytes on disk -> decoded text plus what we know about the file.

Every offset newsflow writes is a character offset into the text this step returns,
so decoding is deliberately explicit: a BOM wins; then UTF-16 without BOM (by its
NUL-byte pattern); then strict UTF-8; then strict GB18030 with a plausibility check
(GB18030 maps almost any byte string to *something*). Anything else is quarantined
with a reason a person can act on; nothing here guesses silently.
"""

from __future__ import annotations

import codecs
import hashlib
import unicodedata
from dataclasses import dataclass
from pathlib import Path

# Magic numbers of binary formats people drop into folders by mistake.
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"PK\x03\x04", "a ZIP archive (or an Office document)"),
    (b"%PDF", "a PDF document"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"\x7fELF", "an executable program"),
    (b"RIFF", "a RIFF media file"),
    (b"\x00\x00\x01\x00", "an icon file"),
)
_BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF32_LE, "utf-32"),  # before UTF-16 LE: it starts with the same two bytes
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
# Characters allowed in text although they are "control" characters.
_ALLOWED_CONTROLS = frozenset("\t\n\r\f\v")
_MAX_CONTROL_SHARE = 0.01


class QuarantineError(Exception):
    """A file newsflow will not process; `reason` is written to the manifest."""

    def __init__(self, source_file: str, reason: str) -> None:
        super().__init__(f"{source_file}: {reason}")
        self.source_file = source_file
        self.reason = reason


@dataclass(frozen=True, slots=True)
class LoadedFile:
    source_file: str  # path relative to the seeds root, POSIX separators
    sha256: str
    n_bytes: int
    encoding: str
    text: str


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _utf16_without_bom(data: bytes) -> str | None:
    """UTF-16 text without a BOM has a NUL in every other byte for ASCII-range text."""
    if len(data) < 4 or len(data) % 2:
        return None
    even_nuls = data[0::2].count(0) / (len(data) / 2)
    odd_nuls = data[1::2].count(0) / (len(data) / 2)
    if odd_nuls > 0.3 and even_nuls < 0.05:
        return "utf-16-le"
    if even_nuls > 0.3 and odd_nuls < 0.05:
        return "utf-16-be"
    return None


def _control_share(text: str) -> float:
    if not text:
        return 0.0
    sample = text[:1_000_000]  # a prefix is evidence enough and keeps this O(1) on huge files
    n = sum(1 for ch in sample if unicodedata.category(ch) == "Cc" and ch not in _ALLOWED_CONTROLS)
    return n / len(sample)


def _plausible_gb18030(text: str) -> bool:
    """GB18030 decodes most byte soup; real Chinese text is mostly CJK, ASCII and punctuation."""
    sample = text[:200_000]
    if not sample:
        return False
    good = sum(
        1
        for ch in sample
        if ch.isascii() or "\u4e00" <= ch <= "\u9fff" or "\u3000" <= ch <= "\u303f" or "\uff00" <= ch <= "\uffef"
    )
    return good / len(sample) >= 0.95


def decode_bytes(data: bytes, source_file: str) -> tuple[str, str]:
    """Decode `data`; return (text, encoding name). Raise QuarantineError with a reason."""
    if not data:
        raise QuarantineError(source_file, "the file is empty (0 bytes); nothing to ingest — delete it or deliver the full page")
    for magic, what in _MAGIC:
        if data.startswith(magic):
            raise QuarantineError(source_file, f"binary data: the file is {what}, not text — it does not belong in the seeds folder")
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(encoding), ("utf-8-sig" if encoding == "utf-8-sig" else encoding)
            except UnicodeDecodeError as exc:
                raise QuarantineError(
                    source_file, f"starts with a {encoding} byte-order mark but byte {exc.start} is not valid {encoding}; re-export the file"
                ) from None
    utf16 = _utf16_without_bom(data)
    if utf16:
        try:
            return data.decode(utf16), utf16
        except UnicodeDecodeError:
            pass
    if b"\x00" in data:
        raise QuarantineError(source_file, "binary data: the file contains NUL bytes and is not UTF-16 text")
    try:
        text, encoding = data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError as utf8_error:
        try:
            text, encoding = data.decode("gb18030"), "gb18030"
        except UnicodeDecodeError:
            text = ""
        if not text or not _plausible_gb18030(text):
            raise QuarantineError(
                source_file,
                f"undecodable: byte {utf8_error.start} is not valid UTF-8 and the file is not GB18030 or UTF-16 text "
                "(mixed encodings in one file?); re-save it as UTF-8",
            ) from None
    if _control_share(text) > _MAX_CONTROL_SHARE:
        raise QuarantineError(source_file, f"binary data: more than {_MAX_CONTROL_SHARE:.0%} control characters ({encoding} decoding)")
    return text, encoding


def relative_name(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def load_bytes(data: bytes, source_file: str) -> LoadedFile:
    """Pure core of the load step: bytes -> LoadedFile (or QuarantineError)."""
    text, encoding = decode_bytes(data, source_file)
    if not text.strip():
        raise QuarantineError(source_file, f"the file holds only whitespace ({len(data)} bytes); nothing to ingest")
    return LoadedFile(source_file=source_file, sha256=sha256_hex(data), n_bytes=len(data), encoding=encoding, text=text)


def read_file_bytes(path: Path, source_file: str) -> bytes:
    """Read a regular file, refusing links and non-files with a clear reason."""
    try:
        if path.is_symlink():
            raise QuarantineError(source_file, "is a symbolic link; newsflow never follows links out of the seeds folder")
        if not path.is_file():
            raise QuarantineError(source_file, "is not a regular file (a directory or a device?)")
        return path.read_bytes()
    except FileNotFoundError:
        raise QuarantineError(source_file, "disappeared while the run was reading it (deleted or moved); it will be picked up again if it comes back") from None
    except PermissionError:
        raise QuarantineError(source_file, "cannot be read: permission denied") from None
    except IsADirectoryError:
        raise QuarantineError(source_file, "is a directory, not a file") from None


def load_file(path: Path, root: Path) -> LoadedFile:
    source_file = relative_name(path, root)
    return load_bytes(read_file_bytes(path, source_file), source_file)
