"""Where the datasets live: a local folder or any pyarrow/fsspec filesystem URI.

`open_data_dir` turns a data-dir string into a store with the few operations the commit
protocol of tasks/storage/commit.py needs, on paths relative to the data dir (posix, `/`):

* `LocalDir` — a plain path or `file:///...`: temp name + fsync + os.replace, fsync of
  folders.
* `ArrowDir` — anything `pyarrow.fs.FileSystem.from_uri` accepts (`s3://`, `gs://`,
  `abfs://`) or, failing that, any fsspec URI (`memory://`, ...). Object stores have no
  rename and no fsync: a file is serialised in memory, then written in one upload
  (`open_output_stream`), which creates the object only when it completes, so every
  object is whole; a move is copy + delete, repeatable after a crash. (Filesystems that write in
  place, such as HDFS or SFTP, also
  work but lose the whole-file guarantee: docs/GUARANTEES.md.)

Batch workers spill rows to a local folder (`spill_dir`): inside the data dir when it is
local, under a local scratch folder when it is remote (see `cache_dir`).
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs

from tasks.process.faults import fault_point
from tasks.storage.location import cache_dir, is_uri, uri_key

STAGING_DIR = "_staging"
SPILL_DIR = "batches"
# The data-quality report's folder (tasks/report/history.py). Its writers hold their own lock,
# not the data folder's, and remove their own temp files under it: a run's recovery leaves
# this folder alone, or it could delete a report's temp file while that report is writing.
REPORTS_DIR = "_reports"

# Receives where to write: a local path (str) for LocalDir, an output stream for ArrowDir.
Writer = Callable[[Any], None]


def sort_key(rel: str) -> list[str]:
    """Order of relative paths as `sorted(Path.rglob(...))` gives (part by part), so the
    rows of a dataset are read in the same order on every filesystem."""
    return rel.split("/")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LocalDir:
    """A data dir on local disk: each file is written to a temp name, fsynced, renamed."""

    is_local = True

    def __init__(self, root: Path) -> None:
        self.root = root
        self.uri = str(root)

    def full(self, rel: str) -> str:
        return str(self.root / rel)

    def filesystem(self) -> pafs.FileSystem | None:
        return None  # pyarrow's default: the local filesystem

    def exists(self, rel: str) -> bool:
        return (self.root / rel).exists()

    def has_dir(self, rel: str) -> bool:
        return (self.root / rel).exists()

    def list_files(self, rel: str, name: str) -> list[str]:
        folder = self.root / rel
        if not folder.exists():
            return []
        return [p.relative_to(self.root).as_posix() for p in sorted(folder.rglob(name))]

    def list_dirs(self, rel: str) -> list[str]:
        folder = self.root / rel
        return sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.exists() else []

    def read_text(self, rel: str) -> str:
        return (self.root / rel).read_text()

    def write_atomic(self, rel: str, write: Writer, point: str, sync_dir: bool = False) -> None:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        write(str(tmp))
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        fault_point(point)
        os.replace(tmp, path)  # the rename is atomic: readers see the old or the new file
        if sync_dir:
            _fsync_dir(path.parent)

    def make_dirs(self, rel: str) -> None:
        (self.root / rel).mkdir(parents=True, exist_ok=True)

    def move(self, src: str, dst: str) -> None:
        target = self.root / dst
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self.root / src, target)

    def delete_file(self, rel: str) -> None:
        target = self.root / rel
        target.unlink(missing_ok=True)
        folder = target.parent
        while folder != self.root and folder.exists() and not any(folder.iterdir()):
            folder.rmdir()
            folder = folder.parent

    def sync_dirs(self, rels: set[str]) -> None:
        # Make renames durable before the commit record goes away (power loss, not just kill -9).
        for folder in sorted(self.root / r for r in rels):
            _fsync_dir(folder)

    def rmtree(self, rel: str) -> None:
        shutil.rmtree(self.root / rel)

    def remove_dir_if_empty(self, rel: str) -> None:
        with contextlib.suppress(OSError):  # not empty, or gone
            (self.root / rel).rmdir()

    def remove_temp_files(self) -> list[str]:
        done = []
        reports = self.root / REPORTS_DIR
        for leftover in self.root.rglob(".*.tmp"):
            if leftover.is_relative_to(reports):
                continue
            leftover.unlink(missing_ok=True)
            done.append(leftover.relative_to(self.root).as_posix())
        return done

    def spill_dir(self, run_id: str) -> Path:
        return self.root / STAGING_DIR / run_id / SPILL_DIR

    def clear_spill(self, run_id: str | None = None) -> None:
        """Nothing to do: the spill lives in the staging folder, removed with it."""


class ArrowDir:
    """A data dir on a pyarrow filesystem without rename or fsync (object stores)."""

    is_local = False

    def __init__(self, fs: pafs.FileSystem, root: str, uri: str) -> None:
        self.fs = fs
        self.root = root.rstrip("/")
        self.uri = uri

    def full(self, rel: str) -> str:
        return f"{self.root}/{rel}" if rel else self.root

    def filesystem(self) -> pafs.FileSystem | None:
        return self.fs

    def _rel(self, path: str) -> str:
        prefix = self.root + "/"
        if not path.startswith(prefix):
            raise ValueError(f"{path!r} is not under {self.root!r}")
        return path[len(prefix) :]

    def _list(self, rel: str, recursive: bool) -> list[pafs.FileInfo]:
        selector = pafs.FileSelector(self.full(rel), recursive=recursive, allow_not_found=True)
        return self.fs.get_file_info(selector)

    def exists(self, rel: str) -> bool:
        return self.fs.get_file_info(self.full(rel)).type == pafs.FileType.File

    def has_dir(self, rel: str) -> bool:
        return self.fs.get_file_info(self.full(rel)).type == pafs.FileType.Directory

    def list_files(self, rel: str, name: str) -> list[str]:
        found = [
            self._rel(i.path) for i in self._list(rel, True) if i.type == pafs.FileType.File and i.base_name == name
        ]
        return sorted(found, key=sort_key)

    def list_dirs(self, rel: str) -> list[str]:
        return sorted(i.base_name for i in self._list(rel, False) if i.type == pafs.FileType.Directory)

    def read_text(self, rel: str) -> str:
        with self.fs.open_input_stream(self.full(rel)) as fh:
            return fh.read().decode("utf-8")

    def write_atomic(self, rel: str, write: Writer, point: str, sync_dir: bool = False) -> None:
        # Serialise to memory first: closing a stream uploads what it holds, even after an
        # exception, and pyarrow streams cannot abort. Then one upload of the whole file;
        # the object exists only once it completes. No temp name, so the kill point comes
        # before the upload.
        buffer = pa.BufferOutputStream()
        write(buffer)
        data = buffer.getvalue()
        fault_point(point)
        with self.fs.open_output_stream(self.full(rel)) as out:
            out.write(data)

    def make_dirs(self, rel: str) -> None:
        """Object stores have no folders to create."""

    def move(self, src: str, dst: str) -> None:
        # No rename on object stores: copy (the target appears whole), then delete the
        # source. A crash in between leaves both; rolling forward again copies again.
        self.fs.copy_file(self.full(src), self.full(dst))
        self.fs.delete_file(self.full(src))

    def delete_file(self, rel: str) -> None:
        if self.exists(rel):
            self.fs.delete_file(self.full(rel))

    def sync_dirs(self, rels: set[str]) -> None:
        """An object store's writes are durable once acknowledged."""

    def rmtree(self, rel: str) -> None:
        try:
            self.fs.delete_dir(self.full(rel))
        except FileNotFoundError:
            pass

    def remove_temp_files(self) -> list[str]:
        return []  # nothing is ever written under a temp name

    def remove_dir_if_empty(self, rel: str) -> None:
        """Nothing to do: an object store has no empty folders."""

    def _scratch(self) -> Path:
        return cache_dir() / "spill" / uri_key(self.uri)

    def spill_dir(self, run_id: str) -> Path:
        return self._scratch() / run_id / SPILL_DIR

    def clear_spill(self, run_id: str | None = None) -> None:
        shutil.rmtree(self._scratch() / run_id if run_id else self._scratch(), ignore_errors=True)


DataDirLike = str | Path | LocalDir | ArrowDir


def open_data_dir(data_dir: DataDirLike) -> LocalDir | ArrowDir:
    """A store for a plain path, a `file://` URI, or any pyarrow/fsspec filesystem URI."""
    if isinstance(data_dir, LocalDir | ArrowDir):
        return data_dir
    if isinstance(data_dir, Path) or not is_uri(data_dir):
        return LocalDir(Path(data_dir))
    return _open_uri(data_dir.rstrip("/"))


@functools.cache  # one filesystem per URI and process (S3 resolves the bucket's region once)
def _open_uri(uri: str) -> LocalDir | ArrowDir:
    try:
        fs, path = pafs.FileSystem.from_uri(uri)
    except pa.ArrowInvalid:  # a scheme pyarrow does not know: try fsspec (memory://, ...)
        import fsspec  # an optional dependency, only needed for such URIs

        fsspec_fs, path = fsspec.core.url_to_fs(uri)
        fs = pafs.PyFileSystem(pafs.FSSpecHandler(fsspec_fs))
    if isinstance(fs, pafs.LocalFileSystem):
        return LocalDir(Path(path))
    return ArrowDir(fs, path, uri)
