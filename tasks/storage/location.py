"""Where a data folder is: a local path or a filesystem URI, checked before anything is
touched (imports nothing heavy: the CLI checks its arguments with it before a run starts)."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from tasks.errors import BadParameter

# Schemes pyarrow.fs.FileSystem.from_uri knows; any other goes to fsspec (when installed).
ARROW_SCHEMES = frozenset({"file", "s3", "gs", "gcs", "hdfs", "viewfs", "abfs", "abfss", "az"})
_SCHEME = re.compile(r"[a-z][a-z0-9+.-]*")


def is_uri(data_dir: str) -> bool:
    return "://" in data_dir


def cache_dir() -> Path:
    """Local scratch of this host: `$NEWSFLOW_CACHE_DIR`, else `$XDG_CACHE_HOME/newsflow`,
    else `~/.cache/newsflow` (lock files and the spill of remote data dirs)."""
    explicit = os.environ.get("NEWSFLOW_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "newsflow"


def uri_key(uri: str) -> str:
    """A file-name-safe key of a data-dir URI (lock and scratch folder names)."""
    return hashlib.sha256(uri.encode("utf-8")).hexdigest()


def check_data_dir(data_dir: str) -> None:
    """Refuse a data folder that cannot work, naming it: a path that is a file or cannot be
    created, a malformed URI or one with a scheme no installed filesystem knows."""
    if is_uri(data_dir):
        scheme, rest = data_dir.split("://", 1)
        if not _SCHEME.fullmatch(scheme) or not rest.strip("/"):
            raise BadParameter(
                f"data folder {data_dir!r} is not a path nor a filesystem URI such as s3://bucket/newsflow or file:///srv/data"
            )
        if scheme == "file":
            _check_local(Path("/" + rest.lstrip("/")), data_dir)
        elif scheme not in ARROW_SCHEMES:
            try:
                import fsspec

                fsspec.get_filesystem_class(scheme)
            except (ImportError, ValueError):
                raise BadParameter(
                    f"data folder {data_dir!r}: no filesystem knows the scheme {scheme!r}; use a local path, "
                    f"one of {', '.join(sorted(ARROW_SCHEMES))}, or install the fsspec package that provides it"
                ) from None
        return
    if re.match(r"[A-Za-z][A-Za-z0-9+.-]*:", data_dir):  # "s3:/bucket": a URI missing a slash
        raise BadParameter(f"data folder {data_dir!r} is not a path nor a filesystem URI such as s3://bucket/newsflow")
    _check_local(Path(data_dir), data_dir)


def _check_local(path: Path, given: str) -> None:
    if path.exists():
        if not path.is_dir():
            raise BadParameter(f"data folder {given!r} is a file, not a folder: pass a folder (it is made if missing)")
        if not os.access(path, os.W_OK | os.X_OK):
            raise BadParameter(
                f"data folder {given!r} is not writable by this user: fix its permissions or pass another folder"
            )
        return
    parent = next(p for p in path.absolute().parents if p.exists())
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise BadParameter(f"data folder {given!r} cannot be made: {parent} is not a writable folder")
