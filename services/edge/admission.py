"""Admission to the LLM replicas: first come, first served, nobody dropped silently.

One line for both limits: a new session is pinned to a replica with room at once if the edge is
also below its own limit of talking sessions (``--max-sessions``). When either is full it waits
in a FIFO queue and is told its position and an estimate of its wait (``parley.queue.updated``),
again whenever either changes; when a slot opens, the first in line gets it
(``parley.queue.admitted``). A session that goes away while waiting leaves the queue. The wait
estimate follows the MiniCPM-o gateway: sessions last about as long as the recent ones did (a
moving average), so the k-th in line gets the k-th slot expected to open.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Protocol

from services.edge import metrics
from services.edge.pool import LlmPool, Replica

RECENT_SESSIONS = 20
SOONEST_SECONDS = 5.0  # a session past its expected length may still end any moment, not now


class Waiter(Protocol):
    session_id: str

    def queue_update(self, position: int, length: int, eta_seconds: float) -> None: ...


@dataclass(eq=False)
class _Ticket:
    waiter: Waiter
    future: asyncio.Future[Replica]
    since: float = field(default_factory=time.monotonic)
    told: tuple[int, int, int] = (0, 0, -1)  # (position, queue length, eta) last sent


class Admission:
    def __init__(self, pool: LlmPool, prior_session_seconds: float, max_active: int | None = None) -> None:
        """``max_active``: the edge's own limit on admitted sessions (None: the replicas' room only)."""
        self._pool = pool
        self._prior = prior_session_seconds
        self._max_active = max_active
        self._queue: deque[_Ticket] = deque()
        self._admitted: dict[str, float] = {}  # session id -> admitted at (monotonic)
        self._lengths: deque[float] = deque(maxlen=RECENT_SESSIONS)

    @property
    def waiting(self) -> int:
        return len(self._queue)

    def try_admit(self, waiter: Waiter) -> Replica | None:
        """A replica at once if one has room and nobody is waiting (else None: call ``admit``)."""
        if self._queue or self._edge_full:
            return None
        replica = self._pool.place(waiter.session_id)
        if replica is not None:
            self._admitted[waiter.session_id] = time.monotonic()
            metrics.QUEUE_WAIT_SECONDS.observe(0)
        return replica

    async def admit(self, waiter: Waiter) -> Replica:
        """A replica for this session: at once if one has room and nobody waits, else in turn."""
        replica = self.try_admit(waiter)
        if replica is not None:
            return replica
        ticket = _Ticket(waiter, asyncio.get_running_loop().create_future())
        self._queue.append(ticket)
        metrics.QUEUE_LENGTH.set(len(self._queue))
        self._tell_positions()
        try:
            return await ticket.future
        finally:
            if ticket in self._queue:  # cancelled, timed out or gone while waiting
                self._queue.remove(ticket)
                metrics.QUEUE_LENGTH.set(len(self._queue))
                metrics.QUEUE_LEFT.inc()
                self._tell_positions()

    def leave(self, session_id: str) -> None:
        """An admitted session ended: free its slot and let the next one in."""
        admitted = self._admitted.pop(session_id, None)
        if admitted is not None:
            self._lengths.append(time.monotonic() - admitted)
        self._pool.release(session_id)  # calls room_changed

    def room_changed(self) -> None:
        """A slot may have opened (a session ended, a replica came back): admit in order."""
        while self._queue:
            ticket = self._queue[0]
            if ticket.future.done():
                self._queue.popleft()
                continue
            if self._edge_full:
                break
            replica = self._pool.place(ticket.waiter.session_id)
            if replica is None:
                break
            self._queue.popleft()
            self._admitted[ticket.waiter.session_id] = time.monotonic()
            metrics.QUEUE_WAIT_SECONDS.observe(time.monotonic() - ticket.since)
            ticket.future.set_result(replica)
        metrics.QUEUE_LENGTH.set(len(self._queue))
        self._tell_positions()

    @property
    def _edge_full(self) -> bool:
        return self._max_active is not None and len(self._admitted) >= self._max_active

    def eta_seconds(self, position: int) -> float:
        """Expected wait of the ``position``-th in line (1-based)."""
        typical = statistics.fmean(self._lengths) if self._lengths else self._prior
        now = time.monotonic()
        ends = sorted(max(now + SOONEST_SECONDS, since + typical) for since in self._admitted.values())
        if not ends:  # nothing admitted (every replica is out): a slot comes when one is back
            return typical * position
        rounds, index = divmod(position - 1, len(ends))
        return ends[index] + rounds * typical - now

    def _tell_positions(self) -> None:
        for position, ticket in enumerate(self._queue, start=1):
            eta = round(self.eta_seconds(position))
            if ticket.told != (position, len(self._queue), eta):
                ticket.told = (position, len(self._queue), eta)
                ticket.waiter.queue_update(position, len(self._queue), eta)
