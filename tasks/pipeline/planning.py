"""Which files of the seeds folder a run looks at, and how they are grouped into batches
and Prefect task runs (pure planning: the flow decides, tasks/pipeline/batch.py does the work)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from tasks.errors import BadParameter
from tasks.steps.load import display_name

# Files that are still being written or are not content: editors' backups, partial
# downloads, hidden files. The watcher ignores the same names (flows/watch.py).
_IGNORED_SUFFIXES = (".part", ".tmp", ".crdownload", ".swp", "~")


class UnsafeGlob(BadParameter):
    """A glob (or a file name) that could reach outside the seeds folder."""


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


def check_seeds_dir(seeds_dir: Path) -> None:
    """Refuse a seeds folder that cannot be read, naming it."""
    if not seeds_dir.exists():
        raise BadParameter(f"seeds folder {str(seeds_dir)!r} does not exist: pass the folder that holds the .txt pages")
    if not seeds_dir.is_dir():
        raise BadParameter(
            f"seeds folder {str(seeds_dir)!r} is a file, not a folder: pass the folder that holds the .txt pages"
        )
    if not os.access(seeds_dir, os.R_OK | os.X_OK):
        raise BadParameter(f"seeds folder {str(seeds_dir)!r} cannot be read by this user: fix its permissions")


def discover_files(seeds_dir: Path, glob: str = "**/*.txt") -> list[DiscoveredFile]:
    """Every entry under `seeds_dir` whose relative path matches `glob`, sorted by name.

    Symbolic links and directories that match are returned too (never followed): the load
    step quarantines them with a reason, so every matching name is accounted for.
    """
    pattern = glob_to_regex(glob)
    check_seeds_dir(seeds_dir)
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


def pack_consecutive(sizes: list[int], limit: int) -> list[list[int]]:
    """Indexes of consecutive items grouped until a group holds `limit` (a big item is alone)."""
    groups: list[list[int]] = []
    current: list[int] = []
    size = 0
    for i, n in enumerate(sizes):
        if current and size + n > limit:
            groups.append(current)
            current, size = [], 0
        current.append(i)
        size += n
    if current:
        groups.append(current)
    return groups


def cut_equal(sizes: list[int], pieces: int) -> list[list[int]]:
    """Indexes of consecutive items in `pieces` groups of about equal bytes: an item goes to
    the group its middle byte falls in, so a group is within one item of its share (groups
    left empty by a big item are dropped)."""
    total = sum(sizes)
    if total == 0 or pieces <= 1:
        return [list(range(len(sizes)))] if sizes else []
    groups: list[list[int]] = [[] for _ in range(pieces)]
    start = 0
    for i, n in enumerate(sizes):
        groups[min((2 * start + n) * pieces // (2 * total), pieces - 1)].append(i)
        start += n
    return [g for g in groups if g]


def equal_groups(sizes: list[int], limit: int, cores: int = 1, at_least: int = 1) -> list[list[int]]:
    """Indexes of consecutive items in groups of about equal bytes, at most `limit` each (a
    big item is alone), at least `at_least` of them; more groups than cores come as a
    multiple of `cores` when the sizes allow (fewer run all at once anyway).

    Equal groups, a multiple of the cores: the workers run out of work together. Groups
    filled to the limit leave the last one running alone while the other cores idle (100 MB
    on 2 cores: 13 batches, one core idle for the last 1.6 s of an 18 s phase)."""
    cores = max(cores, 1)
    pieces = max(-(-sum(sizes) // max(limit, 1)), at_least)  # the fewest the limit allows
    # A group is within one item of its share, which can pass the limit: cut into more,
    # smaller shares until none does. With as many shares as items (items as big as a
    # group, or a tiny limit) equal shares mean nothing: the plain packing, in linear time.
    for _ in range(16):
        if pieces > cores:
            pieces += -pieces % cores
        if pieces >= len(sizes):
            break
        groups = cut_equal(sizes, pieces)
        if all(len(g) == 1 or sum(sizes[i] for i in g) <= limit for g in groups):
            return groups
        pieces += 1
    packed = pack_consecutive(sizes, limit)
    return packed if len(packed) >= at_least else [[i] for i in range(len(sizes))]


def plan_batches(
    files: list[DiscoveredFile], batch_bytes: int, cores: int = 1, at_least: int = 1
) -> list[list[DiscoveredFile]]:
    """Consecutive files in batches of about equal bytes (`equal_groups`)."""
    return [
        [files[i] for i in group] for group in equal_groups([f.n_bytes for f in files], batch_bytes, cores, at_least)
    ]


# A batch below this is mostly per-batch cost (a worker call, spill files).
MIN_BALANCED_BYTES = 1 << 20


@dataclass(frozen=True)
class WorkPlan:
    """A run's files in batches (what one worker process holds at once: bounds memory),
    and the batches grouped into Prefect task runs (bounds the task runs: the UI slows past a
    few thousand). Batch numbers are the order of the files, which the results keep."""

    batches: list[list[str]]  # source files of each batch
    batch_sizes: list[int]  # bytes of each batch
    tasks: list[list[int]]  # batch numbers of each task run
    workers: int  # worker processes for the batches (1 = in the task's own thread)

    def files_of(self, task_no: int) -> list[list[str]]:
        return [self.batches[b] for b in self.tasks[task_no]]

    def bytes_of(self, task_no: int) -> int:
        return sum(self.batch_sizes[b] for b in self.tasks[task_no])


def plan_work(
    files: list[DiscoveredFile], batch_bytes: int, task_bytes: int, workers: int = 0, distributed: bool = False
) -> WorkPlan:
    """Batches of at most `batch_bytes`, grouped into task runs of at most `task_bytes`.

    Locally the batches of every task share one process pool, so task runs can be few, and
    a small input makes one batch a core: batches are equal, so more would only add per-batch
    cost (a batch's spill and its worker round trip have a fixed part).
    On a cluster (`distributed`) a task runs on one worker, its batches one after another:
    there tasks are balanced like batches, at least four a worker (workers differ in speed)."""
    cores = workers or os.cpu_count() or 1
    total = sum(f.n_bytes for f in files)
    per_core = 4 if distributed else 1
    batches = plan_batches(files, batch_bytes, cores, at_least=min(per_core * cores, total // MIN_BALANCED_BYTES))
    sizes = [sum(f.n_bytes for f in b) for b in batches]
    if distributed:
        tasks = equal_groups(sizes, task_bytes, cores, at_least=min(per_core * cores, len(batches)))
    else:
        tasks = pack_consecutive(sizes, task_bytes)
    return WorkPlan(
        batches=[[f.source_file for f in b] for b in batches],
        batch_sizes=sizes,
        tasks=tasks,
        workers=min(cores, len(batches)) if len(batches) > 1 else 1,
    )


def select_files(seeds: Path, glob: str, files: list[str] | None, since: datetime | None) -> list[DiscoveredFile]:
    """The files a run looks at: the glob's matches, narrowed to `files` and to `since`."""
    found = discover_files(seeds, glob)
    if files is not None:
        wanted = {relative_to_seeds(seeds, name) for name in files}
        found = [f for f in found if f.source_file in wanted]
    if since is not None:
        cutoff = since.timestamp()
        found = [f for f in found if _mtime(seeds / f.source_file) >= cutoff]
    return found


def relative_to_seeds(seeds: Path, name: str) -> str:
    """A file named by an event or a person, as a path relative to the seeds folder —
    refusing anything that resolves outside it."""
    path = Path(name)
    if path.is_absolute():
        try:
            path = path.resolve(strict=False).relative_to(seeds.resolve())
        except ValueError:
            raise UnsafeGlob(f"file {name!r} is outside the seeds folder {seeds}; refused") from None
    if any(part == ".." for part in path.parts):
        raise UnsafeGlob(f"file {name!r} climbs out of the seeds folder with '..'; refused")
    return path.as_posix()


def _mtime(path: Path) -> float:
    try:
        return path.lstat().st_mtime
    except FileNotFoundError:
        return 0.0
