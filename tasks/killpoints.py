"""Named points where the fault-injection suite kills the process (tests/faults).

`checkpoint("stage:articles")` does nothing unless NEWSFLOW_KILL_AT is set, e.g.
`NEWSFLOW_KILL_AT=apply:3` sends SIGKILL to this process the 3rd time it reaches a
checkpoint named `apply`. It is the honest way to crash at an exact point: a real
`kill -9`, no exception handlers, no cleanup. Costs one dict lookup when unset.
"""

from __future__ import annotations

import os
import signal

_TARGET = os.environ.get("NEWSFLOW_KILL_AT", "")
_NAME, _, _NTH = _TARGET.partition(":")
_COUNTS: dict[str, int] = {}


def checkpoint(name: str) -> None:
    if not _TARGET:
        return
    # "stage:articles" matches target "stage" (any dataset) and "stage:articles"
    if name != _NAME and name.split(":", 1)[0] != _NAME:
        return
    _COUNTS[_NAME] = _COUNTS.get(_NAME, 0) + 1
    if _COUNTS[_NAME] >= int(_NTH or 1):
        os.kill(os.getpid(), signal.SIGKILL)
