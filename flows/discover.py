"""Which files of the seeds folder a run looks at, and how they are grouped into batches."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from tasks.load import display_name

# Files that are still being written or are not content: editors' backups, partial
# downloads, hidden files. The watcher ignores the same names (flows/watch.py).
_IGNORED_SUFFIXES = (".part", ".tmp", ".crdownload", ".swp", "~")


class UnsafeGlob(ValueError):
    """A glob that could reach outside the seeds folder."""


@dataclass(frozen=True, slots=True)
class DiscoveredFile:
    source_file: str  # relative to the seeds folder, POSIX separators
    n_bytes: int


def is_ignored_name(name: str) -> bool:
    return name.startswith(".") or name.endswith(_IGNORED_SUFFIXES)


def glob_to_regex(glob: str) -> re.Pattern[str]:
    """`**/` = any number of folders (including none), `*` and `?` stay inside one folder."""
    validate_glob(glob)
    out, i = [], 0
    while i < len(glob):
        if glob.startswith("**/", i):
            out.append("(?:[^/]+/)*")
            i += 3
        elif glob.startswith("**", i):
            out.append(".*")
            i += 2
        elif glob[i] == "*":
            out.append("[^/]*")
            i += 1
        elif glob[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(glob[i]))
            i += 1
    return re.compile("".join(out))


def validate_glob(glob: str) -> None:
    if not glob or not glob.strip():
        raise UnsafeGlob("glob is empty; use e.g. '**/*.txt'")
    if glob.startswith(("/", "\\", "~")) or re.match(r"^[A-Za-z]:", glob):
        raise UnsafeGlob(f"glob {glob!r} is absolute; it must be relative to the seeds folder, e.g. '2024/*.txt'")
    if any(part == ".." for part in re.split(r"[/\\]", glob)):
        raise UnsafeGlob(f"glob {glob!r} climbs out of the seeds folder with '..'; refused")
    if "\x00" in glob or "\n" in glob:
        raise UnsafeGlob("glob contains control characters; refused")


def discover_files(seeds_dir: Path, glob: str = "**/*.txt") -> list[DiscoveredFile]:
    """Every entry under `seeds_dir` whose relative path matches `glob`, sorted by name.

    Symbolic links and directories that match are returned too (never followed): the load
    step quarantines them with a reason, so every matching name is accounted for.
    """
    pattern = glob_to_regex(glob)
    if not seeds_dir.is_dir():
        raise FileNotFoundError(f"seeds folder {seeds_dir} does not exist")
    found: list[DiscoveredFile] = []
    for folder, dirs, names in os.walk(seeds_dir, followlinks=False):
        rel_folder = Path(folder).relative_to(seeds_dir)
        # prune hidden folders (.quarantine, .git) but still report matching folder names
        for d in list(dirs):
            if is_ignored_name(d):
                dirs.remove(d)
            elif pattern.fullmatch((rel_folder / d).as_posix()):
                found.append(DiscoveredFile(display_name((rel_folder / d).as_posix()), 0))
        for name in names:
            if is_ignored_name(name):
                continue
            rel = (rel_folder / name).as_posix()
            if pattern.fullmatch(rel):
                try:
                    size = os.lstat(os.path.join(folder, name)).st_size
                except FileNotFoundError:
                    size = 0
                found.append(DiscoveredFile(display_name(rel), size))
    return sorted(found, key=lambda f: f.source_file)


def plan_batches(files: list[DiscoveredFile], batch_bytes: int) -> list[list[DiscoveredFile]]:
    """Consecutive files grouped until a batch holds `batch_bytes` (a big file is alone)."""
    batches: list[list[DiscoveredFile]] = []
    current: list[DiscoveredFile] = []
    size = 0
    for f in files:
        if current and size + f.n_bytes > batch_bytes:
            batches.append(current)
            current, size = [], 0
        current.append(f)
        size += f.n_bytes
    if current:
        batches.append(current)
    return batches
