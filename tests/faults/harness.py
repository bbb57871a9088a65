"""Helpers of the fault-injection suite: real `newsflow run` child processes (peak RSS per
child via wait4), dataset snapshots read back with polars and DuckDB, tree checks, and the
figures printed at the end of the session (see conftest.pytest_terminal_summary)."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import polars as pl
import psutil
import pyarrow.parquet as pq

from tasks.schema import ALL_DATASETS, FILES, MINHASH_INDEX, C, DatasetSpec
from tests.paths import reference_seeds

VENV_BIN = Path(sys.executable).parent
NEWSFLOW = str(VENV_BIN / "newsflow")
# The run's checkpoints (tasks/process/faults.py::fault_point) between taking the data folder's
# lock and letting it go, in the order a run meets them; `locked`, `unlocking` and `lock-busy`
# mark the lock itself.
WORK_CHECKPOINTS = (
    "read",
    "decode",
    "stage",
    "stage-partition",
    "parquet-written",
    "commit",
    "commit-record",
    "apply-delete",
    "apply",
    "apply-cleanup",
)


def copy_seeds(dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for f in reference_seeds():
        shutil.copyfile(f, dest / f.name)
    return dest


@dataclass
class Stats:
    """Figures of the session, printed as a table at the end (conftest.py)."""

    seed: int | None = None
    inputs_tried: int = 0
    quarantined: int = 0
    processed: int = 0
    ignored: int = 0
    kills_planned: int = 0
    kill_points_survived: int = 0
    time_kills: int = 0
    rows_lost: int = 0
    rows_compared: int = 0
    rss_mb: dict[str, float] = field(default_factory=dict)
    wall_s: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


STATS = Stats()


@dataclass
class Run:
    args: list[str]
    returncode: int
    stdout: str
    stderr: str
    max_rss_mb: float
    wall_seconds: float
    pid: int
    killed_by_timer: bool = False

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def describe(self) -> str:
        return f"newsflow {' '.join(self.args)} -> rc {self.returncode}\n--- stdout ---\n{self.stdout[-3000:]}\n--- stderr ---\n{self.stderr[-5000:]}"


def child_env(base: dict[str, str], **extra: str) -> dict[str, str]:
    env = {k: v for k, v in base.items() if not k.startswith("NEWSFLOW_")}
    env.update(extra)
    return env


def start(args: list[str], env: dict[str, str], log_dir: Path, name: str) -> subprocess.Popen:
    """Start `newsflow <args>`; stdout/stderr go to files (no pipe can fill up and block it)."""
    log_dir.mkdir(parents=True, exist_ok=True)
    out = open(log_dir / f"{name}.out", "wb")  # noqa: SIM115 — closed in finish()
    err = open(log_dir / f"{name}.err", "wb")  # noqa: SIM115
    proc = subprocess.Popen([NEWSFLOW, *args], env=env, stdout=out, stderr=err, cwd=log_dir)
    proc._nf_files = (out, err, log_dir / f"{name}.out", log_dir / f"{name}.err", args, time.monotonic())  # type: ignore[attr-defined]
    return proc


def finish(proc: subprocess.Popen, timeout: float = 300.0, kill_after: float | None = None) -> Run:
    """Wait for the child, sampling the RSS of its process tree every 50 ms. `kill_after`: send
    SIGKILL that many seconds after it started if it is still running. The child is only
    reaped here, so its pid cannot be reused while we may still signal it."""
    out, err, out_path, err_path, args, started = proc._nf_files  # type: ignore[attr-defined]
    killed = False
    tree_peak, next_sample = 0, 0.0
    try:
        while True:
            now = time.monotonic()
            if now >= next_sample:  # RSS of the run's whole process tree (worker processes too)
                tree_peak = max(tree_peak, _tree_rss(proc.pid))
                next_sample = now + 0.05
            pid, status, _ = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            elapsed = time.monotonic() - started
            if kill_after is not None and not killed and elapsed >= kill_after:
                os.kill(proc.pid, signal.SIGKILL)
                killed = True
            if elapsed > timeout:
                os.kill(proc.pid, signal.SIGKILL)
                os.wait4(proc.pid, 0)
                proc.returncode = -9
                raise TimeoutError(f"newsflow {' '.join(args)} did not finish within {timeout:.0f}s")
            time.sleep(0.02)
    finally:
        out.close()
        err.close()
    proc.returncode = os.waitstatus_to_exitcode(status)
    return Run(
        args=args,
        returncode=proc.returncode,
        stdout=out_path.read_text(errors="replace"),
        stderr=err_path.read_text(errors="replace"),
        # not wait4's ru_maxrss: a child started from this process inherits the test
        # process's own peak through fork and exec, which hides the child's
        max_rss_mb=tree_peak / 2**20,
        wall_seconds=time.monotonic() - started,
        pid=proc.pid,
        killed_by_timer=killed,
    )


def _tree_rss(pid: int) -> int:
    try:
        parent = psutil.Process(pid)
        procs = [parent, *parent.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def run(
    args: list[str],
    env: dict[str, str],
    log_dir: Path,
    name: str,
    timeout: float = 300.0,
    kill_after: float | None = None,
) -> Run:
    return finish(start(args, env, log_dir, name), timeout=timeout, kill_after=kill_after)


def wait_for_path(path: Path, timeout: float, proc: subprocess.Popen | None = None, what: str = "") -> None:
    """Poll until `path` exists; fail fast if `proc` exits first."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the child exited ({proc.returncode}) before {what or path} happened")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what or path} did not happen within {timeout:.0f}s")
        time.sleep(0.02)


def wait_for_line(path: Path, predicate, timeout: float, proc: subprocess.Popen | None = None, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while True:
        if path.exists() and any(predicate(line) for line in path.read_text().splitlines()):
            return
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the child exited ({proc.returncode}) before {what}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not happen within {timeout:.0f}s")
        time.sleep(0.02)


# --- reading datasets back -------------------------------------------------------------


def _glob(data: Path, spec: DatasetSpec) -> str:
    return f"{data}/{spec.name}/**/*.parquet" if spec.partition_by else f"{data}/{spec.name}/*.parquet"


def read_polars(data: Path, spec: DatasetSpec) -> pl.DataFrame:
    """A dataset as a reader sees it: polars over the hive glob, partition columns as strings."""
    if not list((data / spec.name).rglob("*.parquet")):
        return pl.DataFrame()
    frame = pl.read_parquet(
        _glob(data, spec),
        hive_partitioning=bool(spec.partition_by),
        hive_schema={p: pl.String for p in spec.partition_by} if spec.partition_by else None,
    )
    keys = list(spec.partition_by) + [k for k in spec.sort_by if k not in spec.partition_by]
    return frame.sort(keys, maintain_order=True)


def duckdb_count(data: Path, spec: DatasetSpec) -> int:
    if not list((data / spec.name).rglob("*.parquet")):
        return 0
    con = duckdb.connect()
    try:
        return con.sql(
            f"SELECT count(*) FROM read_parquet('{_glob(data, spec)}', hive_partitioning = true)"
        ).fetchall()[0][0]
    finally:
        con.close()


PRIMARY_KEYS: dict[str, tuple[str, ...]] = {
    "articles": (C.article_id,),
    "occurrences": (C.source_file, C.ordinal),
    "segments": (C.source_file, C.level, C.paragraph_index, C.sentence_index, C.char_start, C.char_end, C.article_id),
    "spans": (C.span_id,),
    "duplicates": (C.article_id,),
    "files": (C.source_file,),
    MINHASH_INDEX.name: (C.article_id,),
}


def snapshot(data: Path) -> dict[str, pl.DataFrame]:
    """Every dataset (incl. the internal index), comparable across runs: the manifest
    without run_id and processed_at. Also checks each is readable by DuckDB with the same
    row count and has no duplicate rows or keys."""
    out: dict[str, pl.DataFrame] = {}
    for spec in ALL_DATASETS:
        frame = read_polars(data, spec)
        assert duckdb_count(data, spec) == frame.height, f"{spec.name}: DuckDB and polars disagree on the row count"
        if frame.height:
            key = list(PRIMARY_KEYS[spec.name])
            assert frame.select(key).is_duplicated().sum() == 0, f"{spec.name}: duplicate keys {key}"
            assert frame.unique().height == frame.height, f"{spec.name}: duplicate rows"
        if spec is FILES and frame.height:
            frame = frame.drop(C.run_id, C.processed_at)
        out[spec.name] = frame
    return out


def parquet_digests(data: Path, include_manifest: bool = False) -> dict[str, str]:
    return {
        p.relative_to(data).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(data.rglob("*.parquet"))
        if include_manifest or not p.relative_to(data).as_posix().startswith("files/")
    }


def visible_parquet_is_whole(data: Path) -> list[str]:
    """Every Parquet file a reader's glob can see (not under `_`-folders, not hidden) opens
    and reads completely. Returns the problems found (empty = fine)."""
    problems = []
    for p in sorted(data.rglob("*.parquet")):
        rel = p.relative_to(data)
        if any(part.startswith(("_", ".")) for part in rel.parts):
            continue
        try:
            pq.read_table(p)
        except Exception as exc:  # noqa: BLE001 — any failure to read is the finding
            problems.append(f"{rel}: {type(exc).__name__}: {exc}")
    return problems


def leftovers(data: Path) -> list[str]:
    """Partial or staging files left in the data folder (there must be none after a run)."""
    found = [
        p.relative_to(data).as_posix()
        for p in data.rglob("*")
        if p.is_file() and (p.name.endswith(".tmp") or ".tmp" in p.suffixes)
    ]
    staging = data / "_staging"
    if staging.exists():
        found += [p.relative_to(data).as_posix() for p in staging.rglob("*")]
    return found


def total_rows(frames: dict[str, pl.DataFrame]) -> int:
    return sum(f.height for f in frames.values())


def rows_missing(expected: dict[str, pl.DataFrame], got: dict[str, pl.DataFrame]) -> int:
    """Rows of `expected` that are not in `got` (anti-join over every column)."""
    missing = 0
    for name, exp in expected.items():
        have = got.get(name, pl.DataFrame())
        if exp.height == 0:
            continue
        if have.height == 0:
            missing += exp.height
            continue
        cols = [c for c in exp.columns if not isinstance(exp.schema[c], pl.List)]
        missing += exp.select(cols).join(have.select(cols), on=cols, how="anti", nulls_equal=True).height
    return missing


def frames_equal(a: dict[str, pl.DataFrame], b: dict[str, pl.DataFrame]) -> list[str]:
    diffs = []
    for name in sorted(set(a) | set(b)):
        fa, fb = a.get(name, pl.DataFrame()), b.get(name, pl.DataFrame())
        if fa.height != fb.height or fa.columns != fb.columns or not fa.equals(fb):
            diffs.append(f"{name}: {fa.height} rows expected, {fb.height} found")
    return diffs
