"""The ways a run is expected to fail, each said in one line: what is wrong and what to do.

Runs report these as such -- the CLI's message and exit status, the Prefect run's final
state message -- never as a traceback. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import errno
import shutil
from pathlib import Path


class RunError(Exception):
    """A run that cannot go on, for a reason a person can act on."""

    exit_code = 1


class BadParameter(RunError, ValueError):
    """A parameter (CLI option, deployment parameter) that cannot work; nothing was touched."""

    exit_code = 2


class DataDirBusy(RunError):
    """Another run holds the lock on the data directory; this run did nothing."""

    exit_code = 3


class StorageFailed(RunError):
    """The data folder (or the run's staging) could not be written: full or read-only."""

    exit_code = 4


# Errors of the disk, not of newsflow: a full or read-only device, missing permission.
STORAGE_ERRNOS = {
    errno.ENOSPC: "no space left",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
}


def storage_failed(exc: OSError, folder: str | Path) -> StorageFailed | None:
    """The one-line StorageFailed for a disk error met while writing under `folder` (the
    data folder, or a run's staging inside it), or None for any other OSError (a bug, which
    keeps its traceback)."""
    what = STORAGE_ERRNOS.get(exc.errno or 0)
    if what is None:
        return None
    parts = Path(folder).parts
    data = Path(*parts[: parts.index("_staging")]) if "_staging" in parts else Path(folder)
    try:
        usage = shutil.disk_usage(data)
        free = f"{usage.free / (1 << 20):,.1f} MB free of {usage.total / (1 << 20):,.1f} MB"
    except OSError:
        free = "free space unknown"
    return StorageFailed(
        f"{what} writing to the data folder {data} ({free}): nothing was committed and this run's staged files "
        "were removed; free some space (or fix its permissions) and run again"
    )
