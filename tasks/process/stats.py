"""Step statistics: one way to time the steps of a batch or a run, and to merge them.

In the spirit of datatrove's `PipelineStep.track_time` / `stat_update`: each step's wall
time is tracked under its name, summed over calls, and the stats of batches that ran in
other processes are merged into the run's. Nothing here knows which steps exist.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field


@dataclass
class StepStats:
    """Seconds of wall time per step, summed over every block timed under that name."""

    seconds: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def track_time(self, step: str) -> Iterator[None]:
        """Add the wall time of the block to `step` (also when the block raises)."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.add(step, time.perf_counter() - start)

    def add(self, step: str, seconds: float) -> None:
        self.seconds[step] = self.seconds.get(step, 0.0) + seconds

    def merge(self, other: StepStats) -> StepStats:
        """Add `other`'s seconds to these (steps keep the order they first appeared in)."""
        for step, seconds in other.seconds.items():
            self.add(step, seconds)
        return self
