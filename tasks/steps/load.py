"""Step 1 — load: bytes on disk -> decoded text plus what we know about the file.

Every offset newsflow writes is a character offset into the text this step returns,
so decoding is deliberately explicit: a BOM wins; then UTF-16 without BOM (by its
NUL-byte pattern); then strict UTF-8; then strict GB18030 with a plausibility check
(GB18030 maps almost any byte string to *something*). Anything else is quarantined
with a reason a person can act on; nothing here guesses silently.
"""

from __future__ import annotations

import codecs
import errno
import hashlib
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Self

from tasks.process.faults import fault_point

# Memory is bounded by refusing files above this size (bytes). Processing costs roughly
# 40 bytes of memory per input byte for ordinary pages and up to ~180 for one huge
# article (enrichment and MinHash work on a whole article body), so 8 MiB keeps a run
# under ~1.5 GB; it is also the size of one batch. Raise it with the environment
# variable NEWSFLOW_MAX_FILE_BYTES (read when a file is loaded, in every worker).
DEFAULT_MAX_FILE_BYTES = 8 * 1024 * 1024
MAX_FILE_BYTES_ENV = "NEWSFLOW_MAX_FILE_BYTES"
_READ_CHUNK = 1024 * 1024

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
# Unicode category Cc minus the whitespace controls \t \n \v \f \r (a regex: 20x faster
# than a per-character loop over unicodedata.category)
_FORBIDDEN_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x9f]")
_MAX_CONTROL_SHARE = 0.01


class QuarantineError(Exception):
    """A file newsflow will not process; `reason` is written to the manifest."""

    def __init__(self, source_file: str, reason: str) -> None:
        # The manifest row carries the reason alone, so it names the file itself.
        self.source_file = source_file
        self.reason = f"{source_file!r}: {reason}"
        super().__init__(self.reason)


@dataclass(frozen=True, slots=True)
class LoadedFile:
    source_file: str  # path relative to the seeds root, POSIX separators
    sha256: str
    n_bytes: int
    encoding: str
    text: str


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


# Every byte but those a forbidden control can show in, in UTF-8: C0 controls and DEL are
# bytes of their own, C1 controls (U+0080-U+009F) start with the lead byte 0xC2.
_NOT_CONTROL_UTF8 = bytes(b for b in range(256) if not (b <= 0x08 or 0x0E <= b <= 0x1F or b == 0x7F or b == 0xC2))
_CONTROL_SAMPLE = 1_000_000  # chars: a prefix is evidence enough and keeps this O(1) on huge files


def too_many_controls(text: str, utf8: bytes | None = None) -> bool:
    """More than _MAX_CONTROL_SHARE of (a prefix of) text is forbidden control characters.
    With `utf8` (the bytes text was decoded from), a page whose bytes hold too few candidate
    bytes (counted by bytes.translate at C speed) passes without the regex pass: each control
    leaves at least one candidate (measured: 0.02 vs 0.20 s for 27 MB of pages)."""
    if not text:
        return False
    if (
        utf8 is not None
        and len(text) <= _CONTROL_SAMPLE
        and len(utf8.translate(None, _NOT_CONTROL_UTF8)) <= _MAX_CONTROL_SHARE * len(text)
    ):
        return False
    sample = text[:_CONTROL_SAMPLE]
    return len(_FORBIDDEN_CONTROL.findall(sample)) > _MAX_CONTROL_SHARE * len(sample)


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


def _is_cjk(ch: str) -> bool:
    return "\u4e00" <= ch <= "\u9fff" or "\u3000" <= ch <= "\u303f" or "\uff00" <= ch <= "\uffef"


def _mixed_utf8_line(data: bytes) -> int | None:
    """1-based number of the first line that is not UTF-8 in a file where another line is
    UTF-8 Chinese (at least 3 CJK characters) — a file pasted together from differently
    encoded pieces. GB18030 bytes decode as UTF-8 CJK by chance about once in a million
    lines, so genuine GB18030 files are not caught by this."""
    utf8_lines, first_bad = 0, None
    for number, line in enumerate(data.split(b"\n"), start=1):
        if line.isascii():
            continue
        try:
            decoded = line.decode("utf-8")
            if sum(1 for ch in decoded if _is_cjk(ch)) >= 3:
                utf8_lines += 1
        except UnicodeDecodeError:
            first_bad = first_bad or number
        if utf8_lines and first_bad:
            return first_bad
    return None


_REEXPORT = "re-save it as UTF-8 (or GB18030 / UTF-16 with a byte-order mark) and put it back"


def decode_bytes(data: bytes, source_file: str) -> tuple[str, str]:
    """Decode `data`; return (text, encoding name). Raise QuarantineError with a reason."""
    if not data:
        raise QuarantineError(
            source_file, "the file is empty (0 bytes); nothing to ingest — delete it or deliver the full page"
        )
    for magic, what in _MAGIC:
        if data.startswith(magic):
            raise QuarantineError(
                source_file, f"binary data: the file is {what}, not text — remove it from the seeds folder"
            )
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(encoding), ("utf-8-sig" if encoding == "utf-8-sig" else encoding)
            except UnicodeDecodeError as exc:
                raise QuarantineError(
                    source_file,
                    f"starts with a {encoding} byte-order mark but byte "
                    f"{exc.start} is not valid {encoding}; {_REEXPORT}",
                ) from None
    utf16 = _utf16_without_bom(data)
    if utf16:
        try:
            return data.decode(utf16), utf16
        except UnicodeDecodeError:
            pass
    if b"\x00" in data:
        at = data.index(b"\x00")
        raise QuarantineError(
            source_file,
            "binary data: the file contains NUL bytes (first at byte "
            f"{at}) and is not UTF-16 text — remove it, or {_REEXPORT}",
        )
    try:
        text, encoding = data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError as utf8_error:
        line = _mixed_utf8_line(data)
        if line is not None:
            raise QuarantineError(
                source_file,
                f"undecodable: mixed encodings in one file — some lines are UTF-8 but line {line} is not; {_REEXPORT}",
            ) from None
        try:
            text, encoding = data.decode("gb18030"), "gb18030"
        except UnicodeDecodeError:
            text = ""
        if not text or not _plausible_gb18030(text):
            raise QuarantineError(
                source_file,
                f"undecodable: byte {utf8_error.start} is not valid UTF-8 and the file is not GB18030 or UTF-16 text "
                f"(mixed encodings in one file?); {_REEXPORT}",
            ) from None
    if too_many_controls(text, data if encoding == "utf-8" else None):
        raise QuarantineError(
            source_file,
            f"binary data: more than {_MAX_CONTROL_SHARE:.0%} control "
            f"characters ({encoding} decoding) — not a text page; remove it",
        )
    return text, encoding


_RELEASE_LINE = re.compile(r"\s*release\s+time\s*[:：]", re.IGNORECASE)


def _first_nonblank_lines(text: str, n: int) -> list[str]:
    """The first `n` non-blank lines (stripped), without splitting a huge text."""
    found: list[str] = []
    pos = 0
    while len(found) < n and pos < len(text):
        end = text.find("\n", pos)
        end = len(text) if end < 0 else end
        line = text[pos:end].strip()
        if line:
            found.append(line[:200])
        pos = end + 1
    return found


def check_page_shape(text: str, source_file: str) -> None:
    """Refuse pages that cannot hold an article: no text, no title, title but no body."""
    lines = _first_nonblank_lines(text, 3)
    if not lines:
        raise QuarantineError(
            source_file, "the file holds only whitespace; nothing to ingest — delete it or deliver the full page"
        )
    if _RELEASE_LINE.match(lines[0]):
        raise QuarantineError(
            source_file,
            "no title: the page starts with its 'Release time:' line — "
            "the title line is missing; fix the page or re-download it",
        )
    body = [line for line in lines[1:] if not _RELEASE_LINE.match(line)]
    if not body:
        raise QuarantineError(
            source_file,
            "no body: the page holds only its title line "
            f"({lines[0][:80]!r}) — it looks cut off; deliver the full page",
        )


def display_name(raw: str) -> str:
    """A path as newsflow records it: bytes of a name that is not UTF-8 are shown as \\xNN
    (Python hands them over as lone surrogates, which no Parquet string can hold)."""
    try:
        raw.encode("utf-8")
        return raw
    except UnicodeEncodeError:
        return os.fsencode(raw).decode("utf-8", "backslashreplace")


def relative_name(path: Path, root: Path) -> str:
    return display_name(path.relative_to(root).as_posix())


def _undecodable_name(root: Path, parts: list[str]) -> bool:
    """True if parts (as shown by display_name) name an entry whose real name is not UTF-8."""
    folder, bad = os.fsencode(root), False
    for part in parts:
        try:
            entries = os.listdir(folder)
        except OSError:
            return False
        match = next((e for e in entries if e.decode("utf-8", "backslashreplace") == part), None)
        if match is None:
            return False
        try:
            match.decode("utf-8")
        except UnicodeDecodeError:
            bad = True
        folder = os.path.join(folder, match)
    return bad


def max_file_bytes() -> int:
    """The per-file size limit in bytes (NEWSFLOW_MAX_FILE_BYTES, default 8 MiB; 0 = no limit)."""
    raw = os.environ.get(MAX_FILE_BYTES_ENV, "").strip()
    try:
        return int(raw) if raw else DEFAULT_MAX_FILE_BYTES
    except ValueError:
        return DEFAULT_MAX_FILE_BYTES


class OversizedFile(bytes):
    """Stands in for the bytes of a file above the size limit: it holds the file's size and
    its sha256 (computed by streaming, in bounded memory) but not its content, so the
    manifest can still record the file — and skip it next run if it is unchanged —
    without the content ever being held in memory. `load_bytes` quarantines it."""

    def __new__(cls, size: int, sha256: str, limit: int) -> Self:
        obj = super().__new__(cls, b"")
        obj.size, obj.sha256, obj.limit = size, sha256, limit
        return obj

    def __len__(self) -> int:
        return self.size

    def __bool__(self) -> bool:
        return self.size > 0


def sha256_hex(data: bytes) -> str:
    if isinstance(data, OversizedFile):
        return data.sha256
    return hashlib.sha256(data).hexdigest()


def load_bytes(data: bytes, source_file: str, sha256: str | None = None) -> LoadedFile:
    """Pure core of the load step: bytes -> LoadedFile (or QuarantineError). `sha256`: the
    digest of `data` when the caller has it already (the pipeline hashes first, to skip
    unchanged files)."""
    if isinstance(data, OversizedFile):
        raise QuarantineError(
            source_file,
            f"too large: {data.size:,} bytes, above the limit of "
            f"{data.limit:,} bytes per file that keeps memory bounded "
            f"(a page is usually under 100 kB) — split it into pages, or raise the limit with the environment variable "
            f"{MAX_FILE_BYTES_ENV}=<bytes> (about 40–180 bytes of memory per byte of input)",
        )
    text, encoding = decode_bytes(data, source_file)
    check_page_shape(text, source_file)
    return LoadedFile(
        source_file=source_file, sha256=sha256 or sha256_hex(data), n_bytes=len(data), encoding=encoding, text=text
    )


def _safe_parts(source_file: str) -> list[str]:
    parts = source_file.split("/")
    if source_file.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise QuarantineError(source_file, "is not a plain path inside the seeds folder; refused")
    return parts


def _open_beneath(root: Path, parts: list[str], source_file: str) -> int:
    """Open root/parts... for reading without following any symbolic link below `root`
    (each folder is opened relative to its parent with O_NOFOLLOW), and without blocking
    on a named pipe. Returns a file descriptor."""
    nofollow = os.O_NOFOLLOW | os.O_CLOEXEC
    dir_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for folder in parts[:-1]:
            try:
                next_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | nofollow, dir_fd=dir_fd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise QuarantineError(
                        source_file,
                        f"the folder {folder!r} on its path is a symbolic "
                        "link or not a folder; newsflow never follows links",
                    ) from None
                raise
            os.close(dir_fd)
            dir_fd = next_fd
        try:
            return os.open(parts[-1], os.O_RDONLY | os.O_NONBLOCK | nofollow, dir_fd=dir_fd)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise QuarantineError(
                    source_file,
                    "is a symbolic link; newsflow never follows links (they could "
                    "point out of the seeds folder) — copy the file in instead",
                ) from None
            raise
    finally:
        os.close(dir_fd)


def _describe_mode(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a named pipe"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


def read_file_bytes(path: Path, source_file: str) -> bytes:
    """Read a regular file under the seeds folder (`path` == seeds_dir / source_file),
    refusing links, non-files, files above the size limit and files that change while
    they are read, each with a clear reason."""
    parts = _safe_parts(source_file)
    root = Path(*path.parts[: len(path.parts) - len(parts)]) if len(path.parts) > len(parts) else Path(".")
    try:
        fd = _open_beneath(root, parts, source_file)
    except FileNotFoundError:
        if "\\x" in source_file and _undecodable_name(root, parts):
            raise QuarantineError(
                source_file,
                "its name is not valid UTF-8 (shown here with \\xNN escapes); rename the file with a UTF-8 name",
            ) from None
        raise QuarantineError(
            source_file,
            "disappeared while the run was reading it (deleted or moved); it will be picked up again if it comes back",
        ) from None
    except PermissionError:
        raise QuarantineError(
            source_file, "cannot be read: permission denied — make it readable by the user running newsflow"
        ) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise QuarantineError(
                source_file,
                f"is not a regular file: it is {_describe_mode(info.st_mode)} — only text files are ingested",
            )
        fault_point(f"read:{source_file}")
        limit = max_file_bytes()
        if limit and info.st_size > limit:
            digest, size = hashlib.sha256(), 0
            while chunk := os.read(fd, _READ_CHUNK):
                digest.update(chunk)
                size += len(chunk)
            return OversizedFile(size, digest.hexdigest(), limit)
        chunks, size = [], 0
        while chunk := os.read(fd, _READ_CHUNK):
            chunks.append(chunk)
            size += len(chunk)
            if limit and size > limit:  # grew while we read: stop holding it in memory
                raise QuarantineError(
                    source_file,
                    f"grew above the limit of {limit:,} bytes while the "
                    "run was reading it; it will be read again next run",
                )
        if size != info.st_size or os.fstat(fd).st_size != size:
            raise QuarantineError(
                source_file,
                f"changed while the run was reading it (size {info.st_size:,} "
                f"bytes when opened, {size:,} bytes read) — "
                "probably still being written or truncated; it will be read again on the next run",
            )
        return b"".join(chunks)
    except IsADirectoryError:
        raise QuarantineError(source_file, "is a directory, not a file") from None
    finally:
        os.close(fd)


def load_file(path: Path, root: Path) -> LoadedFile:
    source_file = relative_name(path, root)
    return load_bytes(read_file_bytes(path, source_file), source_file)
