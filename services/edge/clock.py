"""The edge's clock: its event loop's.

In production that is ``time.monotonic()``; a scenario test runs the edge on a loop whose time
is virtual, so every timer, timing and playback position of a session moves with it.
"""

from __future__ import annotations

import asyncio
import time


def now() -> float:
    """Seconds on the running loop's clock (monotonic outside a loop)."""
    try:
        return asyncio.get_running_loop().time()
    except RuntimeError:
        return time.monotonic()
