"""The sessions an edge holds, and its limit on them."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from openai.types.realtime import RealtimeErrorEvent

from services.common.memory import FreedMemoryTrimmer
from services.edge import events, metrics
from services.edge.admission import Admission
from services.edge.events import Event
from services.edge.models import ModelServices
from services.edge.session import Session
from services.edge.settings import EdgeSettings


class ServerFull(Exception):
    """Every session slot and every place in the queue is taken."""

    def __init__(self, message: str, retry_after_seconds: int) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds


class SessionRegistry:
    def __init__(self, settings: EdgeSettings, services: ModelServices, admission: Admission) -> None:
        self._settings = settings
        self._services = services
        self._admission = admission
        self.sessions: dict[str, Session] = {}
        self._trimmer = FreedMemoryTrimmer()  # what a closed session held goes back to the system
        metrics.MAX_SESSIONS.set(settings.max_sessions)

    def open(self, transport: str, send: Callable[[Event], None], model: str | None = None) -> Session:
        """A new session (not started yet; it may wait in the admission queue), or ServerFull
        once the sessions talking and waiting fill ``--max-sessions`` plus ``--queue-max-length``."""
        if len(self.sessions) >= self._settings.max_sessions + self._settings.queue_max_length:
            metrics.REFUSED_SESSIONS.labels(reason="full").inc()
            retry = max(5, round(self._admission.eta_seconds(self._admission.waiting + 1)))
            raise ServerFull(
                f"the server is full: {self._settings.max_sessions} sessions are talking and "
                f"{self._admission.waiting} waiting; try again in about {retry} s",
                retry,
            )
        session = Session(
            events.new_id("sess"), transport, self._settings, self._services, send, model, admission=self._admission
        )
        self.sessions[session.session_id] = session
        metrics.SESSIONS.labels(transport=transport).inc()
        metrics.ACTIVE_SESSIONS.labels(transport=transport).inc()
        return session

    async def release(self, session: Session) -> None:
        """Close a session (if it is not yet) and free its slot."""
        await session.close(session.close_reason or "released")
        self._trimmer.soon()
        if self.sessions.pop(session.session_id, None) is not None:
            metrics.ACTIVE_SESSIONS.labels(transport=session.transport).dec()
            metrics.SESSION_SECONDS.observe(time.monotonic() - session.started_at)

    async def close_all(self, reason: str, error: RealtimeErrorEvent | None = None) -> None:
        """Close every session at once, each client told ``error`` first."""

        async def close(session: Session) -> None:
            await session.close(reason, error)
            await self.release(session)

        await asyncio.gather(*(close(session) for session in list(self.sessions.values())))
