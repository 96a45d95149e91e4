"""Conversation sessions: history and engine state per session, isolated from one another."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal


class SessionCapacityError(Exception):
    """No room for another session on this replica."""


Role = Literal["system", "user", "assistant", "tool"]


@dataclass(frozen=True)
class Call:
    """A function call the assistant made: its arguments as JSON text."""

    call_id: str
    name: str
    arguments: str


@dataclass
class Message:
    """One message of the history. ``turn_id`` is the turn that said it ("" for a message added
    outside a turn); ``item_ids`` are the client's ids for it (a turn's user message may merge
    several of the client's items). An assistant message may carry function ``calls``; a tool
    message is a function's result, answering ``call_id``."""

    role: Role
    text: str
    turn_id: str = ""
    item_ids: tuple[str, ...] = ()
    calls: tuple[Call, ...] = ()
    call_id: str = ""

    def as_chat(self) -> dict[str, Any]:
        """The message as a chat template takes it (backends/tools.py)."""
        if self.role == "tool":
            return {"role": "tool", "tool_call_id": self.call_id, "content": self.text}
        chat: dict[str, Any] = {"role": self.role, "content": self.text}
        if self.calls:
            chat["tool_calls"] = [
                {"id": c.call_id, "type": "function", "function": {"name": c.name, "arguments": _arguments(c)}}
                for c in self.calls
            ]
        return chat


def _arguments(call: Call) -> Any:
    try:
        return json.loads(call.arguments)
    except ValueError:  # a call cut short by the reply's length limit: kept as written
        return call.arguments


@dataclass(eq=False)
class Session:
    id: str
    engine_state: Any
    system_prompt: str
    history: list[Message] = field(default_factory=list)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    last_used: float = 0.0

    def messages(
        self, user: str | None = None, *, system_prompt: str | None = None, history: bool = True
    ) -> list[dict[str, Any]]:
        """The conversation as chat messages (the history unless ``history`` is False), with
        ``user`` as the newest message if given."""
        messages: list[dict[str, Any]] = [
            {"role": "system", "content": self.system_prompt if system_prompt is None else system_prompt}
        ]
        if history:
            messages += [m.as_chat() for m in self.history]
        if user is not None:
            messages.append({"role": "user", "content": user})
        return messages

    @property
    def turns(self) -> int:
        """User messages in the history."""
        return sum(1 for m in self.history if m.role == "user")

    def reply_of(self, turn_id: str) -> Message | None:
        return next((m for m in reversed(self.history) if m.turn_id == turn_id and m.role == "assistant"), None)

    def drop_turn(self, turn_id: str) -> None:
        """Forget a turn: the user's words and the reply."""
        self.history = [m for m in self.history if m.turn_id != turn_id]

    def index_of(self, item_id: str) -> int | None:
        return next((i for i, m in enumerate(self.history) if item_id in m.item_ids), None)

    def delete(self, item_id: str) -> bool:
        """Remove the message with this item id (False: there is none)."""
        index = self.index_of(item_id)
        if index is None:
            return False
        del self.history[index]
        return True


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
        session.history.clear()
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
