"""Crashes: a real `kill -9` of a real `newsflow run` child at seeded points, then a normal
re-run must leave every dataset readable (polars and DuckDB), free of partial or staged
files and duplicate rows, and identical to an uninterrupted run (the manifest compared
without run_id and processed_at; every other Parquet file byte for byte).

Kill points come from tasks/process/faults.py (NEWSFLOW_KILL_AT=<name>:<n>). A clean baseline
run logs every checkpoint it reaches (NEWSFLOW_CHECKPOINT_LOG), so the plan only holds
points a run really reaches and each killed child must die of SIGKILL. The choice of n,
the double kills (a second kill during the re-run, e.g. while it rolls a committed run
forward) and the time-based kills are drawn from a seeded RNG: NEWSFLOW_FAULT_SEED=<int>
replays a run (the seed is printed in the summary table).
"""

from __future__ import annotations

import os
import random
import shutil
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.faults.harness import (
    STATS,
    WORK_CHECKPOINTS,
    child_env,
    copy_seeds,
    frames_equal,
    leftovers,
    parquet_digests,
    rows_missing,
    run,
    snapshot,
    total_rows,
    visible_parquet_is_whole,
)

pytestmark = [pytest.mark.faults, pytest.mark.timeout(900)]

MIN_KILL_POINTS = 20
MIN_DOUBLE_KILLS = 5  # scenarios that crash a run while it recovers from a crash
PARALLEL = int(os.environ.get("NEWSFLOW_FAULT_PARALLEL", "2"))
# Checkpoints a kill may target; the lock's own are for the concurrency tests.
KILL_NAMES = WORK_CHECKPOINTS


@dataclass
class Scenario:
    ident: str
    kills: list[str] = field(default_factory=list)  # NEWSFLOW_KILL_AT targets, one child each
    kill_after: float | None = None  # time-based kill instead (seconds after start)


@dataclass
class Outcome:
    scenario: Scenario
    problems: list[str]
    killed: bool
    rows_lost: int
    rows_compared: int
    seconds: float


# Checkpoints every run reaches, whatever state the previous (killed) run left: these serve
# as the second kill, in the re-run after it recovered from the first (a re-run over
# unchanged input commits nothing, so `commit` and later points are not among them).
ALWAYS_REACHED = ("read", "stage")


def _plan(counts: Counter, rng: random.Random, baseline_seconds: float) -> list[Scenario]:
    """Every reachable checkpoint at its first and last occurrence, plus seeded random
    occurrences in between: of the checkpoints every run reaches until there are
    MIN_DOUBLE_KILLS of them, then of any until there are MIN_KILL_POINTS. A point of a
    checkpoint every run reaches is the second kill of a scenario (in the re-run, while or
    after it recovers from the first kill); the others are first kills. Plus three kills
    after a seeded random delay."""
    points: list[str] = []
    for name in KILL_NAMES:
        n = counts.get(name, 0)
        if n:
            points += [f"{name}:1"] + ([f"{name}:{n}"] if n > 1 else [])
    reachable = [name for name in KILL_NAMES if counts.get(name, 0) > 2]
    again = [name for name in ALWAYS_REACHED if name in reachable]
    while sum(p.split(":")[0] in ALWAYS_REACHED for p in points) < MIN_DOUBLE_KILLS:
        name = rng.choice(again)
        point = f"{name}:{rng.randint(2, counts[name] - 1)}"
        if point not in points:
            points.append(point)
    while len(points) < MIN_KILL_POINTS:
        name = rng.choice(reachable)
        point = f"{name}:{rng.randint(2, counts[name] - 1)}"
        if point not in points:
            points.append(point)
    seconds = [p for p in points if p.split(":")[0] in ALWAYS_REACHED]
    firsts = [p for p in points if p not in seconds]
    while len(firsts) < len(seconds):  # not expected with the seeds, but keep every point
        firsts.append(seconds.pop())
    rng.shuffle(firsts)
    rng.shuffle(seconds)
    scenarios = []
    for i, first in enumerate(firsts):
        if i < len(seconds):
            scenarios.append(Scenario(f"kill {first}, then {seconds[i]} in the re-run", [first, seconds[i]]))
        else:
            scenarios.append(Scenario(f"kill {first}", [first]))
    for i in range(3):
        delay = round(rng.uniform(0.3, baseline_seconds), 2)
        scenarios.append(Scenario(f"SIGKILL after {delay}s (timed #{i + 1})", kill_after=delay))
    # longest first: the pool finishes sooner
    return sorted(scenarios, key=lambda sc: -len(sc.kills))


def _check_after_rerun(data: Path, expected: dict, expected_bytes: dict[str, str]) -> tuple[list[str], int]:
    problems = [f"left over: {p}" for p in leftovers(data)]
    got = snapshot(data)  # also: readable by DuckDB, no duplicate rows or keys
    problems += frames_equal(expected, got)
    if parquet_digests(data) != expected_bytes:
        problems.append("Parquet files differ from the uninterrupted run (paths or bytes)")
    return problems, rows_missing(expected, got)


def _run_scenario(
    sc: Scenario, root: Path, seeds: Path, env: dict, expected: dict, expected_bytes: dict[str, str]
) -> Outcome:
    started = time.monotonic()
    data, logs = root / "data", root / "logs"
    args = ["run", "--seeds", str(seeds), "--data", str(data)]
    problems: list[str] = []
    killed = True
    if sc.kills:
        # every kill point lies before the report, which the re-run would draw for ~3 s (a
        # timed kill may land in it: those scenarios keep it, as does the baseline)
        env = child_env(env, NEWSFLOW_REPORT="off")
    for i, target in enumerate(sc.kills):
        r = run(args, child_env(env, NEWSFLOW_KILL_AT=target, NEWSFLOW_REPORT="off"), logs, f"kill{i}", timeout=240)
        if r.returncode != -9:
            problems.append(f"NEWSFLOW_KILL_AT={target}: the child was not killed (rc {r.returncode})\n{r.describe()}")
            killed = False
        problems += [f"after kill {target}: partial Parquet visible: {p}" for p in visible_parquet_is_whole(data)]
    if sc.kill_after is not None:
        r = run(args, env, logs, "timed", timeout=240, kill_after=sc.kill_after)
        killed = r.returncode == -9
        if r.returncode not in (0, -9):
            problems.append(f"timed kill: unexpected rc {r.returncode}\n{r.describe()}")
        problems += [f"after timed kill: partial Parquet visible: {p}" for p in visible_parquet_is_whole(data)]
    rerun = run(args, env, logs, "rerun", timeout=240)
    if rerun.returncode != 0:
        problems.append(f"re-run failed\n{rerun.describe()}")
        return Outcome(sc, problems, killed, total_rows(expected), total_rows(expected), time.monotonic() - started)
    found, lost = _check_after_rerun(data, expected, expected_bytes)
    problems += found
    shutil.rmtree(root, ignore_errors=True)  # keep /tmp small; failures are in `problems`
    return Outcome(sc, problems, killed, lost, total_rows(expected), time.monotonic() - started)


@pytest.fixture(scope="module")
def crash_results(suite_env, tmp_path_factory: pytest.TempPathFactory):
    seed = int(os.environ.get("NEWSFLOW_FAULT_SEED") or random.SystemRandom().randrange(1, 10**6))
    STATS.seed = seed
    rng = random.Random(seed)
    root = tmp_path_factory.mktemp("crash")
    seeds = root / "seeds"
    copy_seeds(seeds)
    # The uninterrupted run: the reference datasets, and which checkpoints a run reaches.
    log = root / "baseline-checkpoints.log"
    base = run(
        ["run", "--seeds", str(seeds), "--data", str(root / "baseline")],
        child_env(suite_env, NEWSFLOW_CHECKPOINT_LOG=str(log)),
        root / "logs",
        "baseline",
    )
    assert base.returncode == 0, base.describe()
    STATS.rss_mb["5 seed files (uninterrupted run)"] = base.max_rss_mb
    STATS.wall_s["one newsflow run, 5 seeds (server)"] = base.wall_seconds
    counts = Counter(line.split(" ", 1)[1].split(":", 1)[0] for line in log.read_text().splitlines())
    expected = snapshot(root / "baseline")
    expected_bytes = parquet_digests(root / "baseline")
    assert total_rows(expected) > 0 and expected["files"].height == 5
    scenarios = _plan(counts, rng, base.wall_seconds)
    STATS.kills_planned = sum(len(s.kills) or 1 for s in scenarios)
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=PARALLEL) as pool:
        futures = [
            pool.submit(_run_scenario, sc, root / f"s{i:02d}", seeds, suite_env, expected, expected_bytes)
            for i, sc in enumerate(scenarios)
        ]
        outcomes = [f.result() for f in futures]
    STATS.wall_s[f"{len(scenarios)} crash scenarios ({PARALLEL} in parallel)"] = time.monotonic() - started
    for o in outcomes:
        STATS.rows_compared += o.rows_compared
        STATS.rows_lost += o.rows_lost
        if not o.problems:
            STATS.kill_points_survived += len(o.scenario.kills) if o.scenario.kills else int(o.killed)
            STATS.time_kills += int(o.scenario.kill_after is not None and o.killed)
    return seed, counts, outcomes


def _report(outcomes: list[Outcome], seed: int) -> str:
    bad = [o for o in outcomes if o.problems]
    return f"NEWSFLOW_FAULT_SEED={seed}: {len(bad)} scenarios failed\n" + "\n\n".join(
        f"[{o.scenario.ident}]\n" + "\n".join(o.problems) for o in bad
    )


def test_the_plan_covers_at_least_20_kill_points_across_every_checkpoint(crash_results) -> None:
    _, counts, outcomes = crash_results
    kill_points = [k for o in outcomes for k in o.scenario.kills]
    assert len(kill_points) >= MIN_KILL_POINTS
    reached = {name for name in KILL_NAMES if counts.get(name)}
    # every checkpoint but `apply-delete`, which only a run that deletes a partition meets
    assert set(KILL_NAMES) - {"apply-delete"} <= reached
    assert {k.split(":")[0] for k in kill_points} == reached
    assert sum(o.scenario.kill_after is not None for o in outcomes) == 3
    assert sum(len(o.scenario.kills) == 2 for o in outcomes) >= MIN_DOUBLE_KILLS


def test_every_checkpoint_kill_really_killed_and_the_rerun_equals_a_clean_run(crash_results) -> None:
    seed, _, outcomes = crash_results
    checkpoint_kills = [o for o in outcomes if o.scenario.kills]
    assert all(o.killed for o in checkpoint_kills), _report(checkpoint_kills, seed)
    assert not any(o.problems for o in checkpoint_kills), _report(checkpoint_kills, seed)
    assert sum(o.rows_lost for o in checkpoint_kills) == 0


def test_time_based_kills_then_rerun_equal_a_clean_run(crash_results) -> None:
    seed, _, outcomes = crash_results
    timed = [o for o in outcomes if o.scenario.kill_after is not None]
    assert not any(o.problems for o in timed), _report(timed, seed)
    assert sum(o.rows_lost for o in timed) == 0
