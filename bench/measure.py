"""Measuring a run from outside: peak memory of a process tree, CPU of Prefect's server,
the machine's floor, and each measured system in a child process of its own.

Every measured system runs as `python -m bench.children <mode> ...`, so its peak RSS (the
child and all its descendants: worker pool, Prefect's API server) is sampled with psutil,
and nothing it caches helps the next one.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

from bench import DEFAULT_ROOT, REPO
from bench.corpus import MB


def corpus_files(seeds: Path) -> list[Path]:
    return sorted(p for p in seeds.rglob("*.txt") if p.is_file())


def machine_limit(seeds: Path) -> dict:
    """The floor any ingest pays: read every file, decode it, one regex pass (one core)."""
    han = re.compile(r"[\u4e00-\u9fff]+")
    n_bytes = hits = 0
    t = time.perf_counter()
    for p in corpus_files(seeds):
        data = p.read_bytes()
        n_bytes += len(data)
        hits += sum(1 for _ in han.finditer(data.decode("utf-8")))
    seconds = time.perf_counter() - t
    return {"seconds": seconds, "mb_per_s": n_bytes / MB / seconds, "bytes": n_bytes, "regex_hits": hits}


def process_kind(cmdline: str) -> str:
    """Which part of a newsflow run a process is, from its command line."""
    if "multiprocessing" in cmdline:
        return "worker"
    if "uvicorn" in cmdline or "server start" in cmdline:
        return "prefect server"
    return "main"


def pss(pid: int) -> int:
    """Proportional set size: private pages plus each shared page divided by the number of
    processes mapping it (the libraries the flow, its workers and the server all map count
    once in the sum, not once per process as they do in RSS). 0 where the kernel has no
    smaps_rollup."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class RssSampler(threading.Thread):
    """Peak of the summed RSS of a process and all its descendants, sampled every 50 ms
    (and the peak of their summed PSS, the same memory with shared pages counted once)."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak, self.peak_pss, self._stop_event = pid, 0, 0, threading.Event()
        self.breakdown: dict[str, int] = {}

    def run(self) -> None:
        import psutil

        try:
            root = psutil.Process(self.pid)
        except psutil.NoSuchProcess:
            return
        while not self._stop_event.is_set():
            total = shared_once = 0
            parts: dict[str, int] = {}
            try:
                procs = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                break
            for p in procs:
                try:
                    rss = p.memory_info().rss
                    cmd = " ".join(p.cmdline()[1:])
                except psutil.Error:
                    continue
                total += rss
                shared_once += pss(p.pid)
                kind = process_kind(cmd)
                parts[kind] = parts.get(kind, 0) + rss
            if total > self.peak:
                self.peak, self.breakdown = total, parts
            self.peak_pss = max(self.peak_pss, shared_once)
            self._stop_event.wait(0.05)

    def stop(self) -> int:
        self._stop_event.set()
        self.join()
        return self.peak


def run_child(mode: str, seeds: Path, work: Path, timeout: float | None = None, python: str | None = None) -> dict:
    """Run `python -m bench.children <mode> seeds work result.json` and sample its RSS."""
    work.mkdir(parents=True, exist_ok=True)
    result = work / "result.json"
    result.unlink(missing_ok=True)
    env = dict(os.environ)
    env.setdefault("PREFECT_HOME", str(DEFAULT_ROOT / ".prefect"))
    env.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    env.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    env.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [env.get("PYTHONPATH")])])
    t = time.perf_counter()
    with open(work / "child.log", "w") as log:
        proc = subprocess.Popen(
            [python or sys.executable, "-m", "bench.children", mode, str(seeds), str(work), str(result)],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        sampler = RssSampler(proc.pid)
        sampler.start()
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            rc = -9
        peak = sampler.stop()
    if rc != 0 or not result.exists():
        tail = (work / "child.log").read_text(errors="replace")[-3000:]
        raise RuntimeError(f"bench child {mode!r} failed (exit {rc}); log {work / 'child.log'}:\n{tail}")
    out = json.loads(result.read_text())
    out["peak_rss_bytes"] = peak
    out["peak_rss_breakdown"] = sampler.breakdown
    out["peak_pss_bytes"] = sampler.peak_pss
    out["process_seconds"] = time.perf_counter() - t
    return out


def prefect_cpu_seconds() -> dict[str, float]:
    """CPU seconds (user + system) so far of this process and of the Prefect API server it
    started: Prefect's cost measured in CPU, which a busy shared machine does not blur the way
    it blurs wall-time differences."""
    import psutil

    me = psutil.Process()
    out = {"flow_process": sum(me.cpu_times()[:2]), "api_server": 0.0}
    for child in me.children(recursive=True):
        try:
            if process_kind(" ".join(child.cmdline())) == "prefect server":
                out["api_server"] += sum(child.cpu_times()[:2])
        except psutil.Error:
            continue
    return out
