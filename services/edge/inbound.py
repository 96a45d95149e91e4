"""What a client may send the edge, per session, on either transport.

Reading, parsing and refusing events costs the edge's one event loop per byte: one WebSocket
client piling up 2.9 MB items took 53% of a core, every other session waiting behind it. An
``InboundBudget`` bounds any one client's share. Over WebSocket the edge then stops reading the
socket and TCP holds the client back; a WebRTC data channel (SCTP in aiortc) cannot be paused, so
its ``EventInbox`` holds at most one burst of unhandled events and refuses beyond it, with an
``error`` event."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable

from openai.types import realtime as rt

from services.edge import events, metrics
from services.edge.settings import EdgeSettings


class InboundBudget:
    """``rate`` bytes a second on average, ``burst`` at once. A client over it waits before
    its next event is handled; nothing within the rate ever waits."""

    def __init__(self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._rate, self.burst, self._clock = rate, burst, clock
        self._tokens, self._at = burst, clock()

    @classmethod
    def of_client(cls, settings: EdgeSettings) -> InboundBudget:
        """One client's budget: ``--max-client-bytes-per-second``, twice ``--max-event-bytes`` at once."""
        return cls(settings.max_client_bytes_per_second, 2 * settings.max_event_bytes)

    def spend(self, size: int) -> float:
        """Take ``size`` bytes; the seconds to wait before reading on (0 within the budget)."""
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self._rate) - size
        self._at = now
        return max(0.0, -self._tokens / self._rate)

    async def hold_back(self, size: int, closed: asyncio.Event) -> None:
        """Spend ``size`` and wait as long as that asks, unless the session ends meanwhile."""
        if wait := self.spend(size):
            metrics.CLIENT_THROTTLED_SECONDS.inc(wait)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(closed.wait(), wait)


class EventInbox:
    """A data channel's events waiting to be handled, in order, within the budget. It holds at
    most ``budget.burst`` bytes; an event beyond that is refused (``refuse`` gets the error)."""

    def __init__(self, budget: InboundBudget, refuse: Callable[[rt.RealtimeErrorEvent], None]) -> None:
        self._budget, self._refuse = budget, refuse
        self._queue: asyncio.Queue[str | bytes] = asyncio.Queue()
        self.queued_bytes = 0  # until handled: the one being handled counts

    def put(self, message: str | bytes) -> None:
        if self.queued_bytes + len(message) > self._budget.burst:
            metrics.CLIENT_REFUSED_EVENTS.inc()
            self._refuse(
                events.error(
                    "rate_limit_exceeded",
                    f"this call sent events faster than {self._budget.burst:.0f} bytes could wait to be read; "
                    "this one was dropped (a data channel cannot be held back): send at most "
                    "--max-client-bytes-per-second",
                    kind="invalid_request_error",
                )
            )
            return
        self._queue.put_nowait(message)
        self.queued_bytes += len(message)

    async def handle(self, handler: Callable[[str | bytes], Awaitable[None]], closed: asyncio.Event) -> None:
        """Hand each event to ``handler`` (awaited), in the order they came, until ``closed``."""
        while not closed.is_set():
            message = await self._queue.get()
            await handler(message)
            self.queued_bytes -= len(message)
            await self._budget.hold_back(len(message), closed)
