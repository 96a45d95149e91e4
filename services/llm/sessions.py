"""Conversation sessions: history and engine state per session, isolated from one another."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


class SessionCapacityError(Exception):
    """No room for another session on this replica."""


@dataclass
class Exchange:
    """One turn of the history: what the user said and what was replied (None: no reply asked)."""

    turn_id: str
    user: str
    reply: str | None


@dataclass(eq=False)
class Session:
    id: str
    engine_state: Any
    system_prompt: str
    exchanges: list[Exchange] = field(default_factory=list)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    last_used: float = 0.0

    def messages(self, user: str | None = None) -> list[dict[str, str]]:
        """The conversation as chat messages, with ``user`` as the newest message if given."""
        messages = [{"role": "system", "content": self.system_prompt}]
        for exchange in self.exchanges:
            messages.append({"role": "user", "content": exchange.user})
            if exchange.reply is not None:
                messages.append({"role": "assistant", "content": exchange.reply})
        if user is not None:
            messages.append({"role": "user", "content": user})
        return messages

    def find(self, turn_id: str) -> Exchange | None:
        return next((e for e in reversed(self.exchanges) if e.turn_id == turn_id), None)


class SessionStore:
    """Holds at most ``max_sessions`` sessions; frees those idle for ``idle_seconds``."""

    def __init__(
        self,
        max_sessions: int,
        idle_seconds: float,
        new_engine_state: Callable[[], Any],
        default_system_prompt: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_sessions = max_sessions
        self._idle_seconds = idle_seconds
        self._new_engine_state = new_engine_state
        self._default_system_prompt = default_system_prompt
        self._clock = clock
        self._sessions: dict[str, Session] = {}

    def __len__(self) -> int:
        return len(self._sessions)

    def get(self, session_id: str) -> Session | None:
        return self._sessions.get(session_id)

    def open(self, session_id: str) -> Session:
        """The session with this id, created if new."""
        session = self._sessions.get(session_id)
        if session is None:
            if len(self._sessions) >= self.max_sessions:
                self.expire_idle()
            if len(self._sessions) >= self.max_sessions:
                raise SessionCapacityError(
                    f"this replica holds its maximum of {self.max_sessions} sessions; "
                    "end one or open the session on another replica"
                )
            session = Session(session_id, self._new_engine_state(), self._default_system_prompt)
            self._sessions[session_id] = session
        session.last_used = self._clock()
        return session

    def reset(self, session_id: str) -> bool:
        session = self._sessions.get(session_id)
        if session is None:
            return False
        session.exchanges.clear()
        session.engine_state = self._new_engine_state()
        session.system_prompt = self._default_system_prompt
        return True

    def end(self, session_id: str) -> bool:
        return self._sessions.pop(session_id, None) is not None

    def expire_idle(self) -> list[str]:
        """Free sessions unused for the idle time (never one with a turn in progress)."""
        deadline = self._clock() - self._idle_seconds
        expired = [s.id for s in self._sessions.values() if s.last_used < deadline and not s.lock.locked()]
        for session_id in expired:
            del self._sessions[session_id]
        return expired
