"""The sessions an edge holds, and its limit on them."""

from __future__ import annotations

import time
from collections.abc import Callable

from services.edge import events, metrics
from services.edge.admission import Admission
from services.edge.events import Event
from services.edge.models import ModelServices
from services.edge.session import Session
from services.edge.settings import EdgeSettings


class ServerFull(Exception):
    """Every session slot is taken."""


class SessionRegistry:
    def __init__(self, settings: EdgeSettings, services: ModelServices, admission: Admission) -> None:
        self._settings = settings
        self._services = services
        self._admission = admission
        self.sessions: dict[str, Session] = {}
        metrics.MAX_SESSIONS.set(settings.max_sessions)

    def open(self, transport: str, send: Callable[[Event], None], model: str | None = None) -> Session:
        """A new session (not started yet), or ServerFull."""
        if len(self.sessions) >= self._settings.max_sessions:
            metrics.REFUSED_SESSIONS.labels(reason="full").inc()
            raise ServerFull(
                f"the server is full: all {self._settings.max_sessions} sessions are in use; try again in a minute"
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
        if self.sessions.pop(session.session_id, None) is not None:
            metrics.ACTIVE_SESSIONS.labels(transport=session.transport).dec()
            metrics.SESSION_SECONDS.observe(time.monotonic() - session.started_at)

    async def close_all(self, reason: str) -> None:
        for session in list(self.sessions.values()):
            await session.close(reason)
            await self.release(session)
