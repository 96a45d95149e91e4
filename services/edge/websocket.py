"""The Realtime API over WebSocket: ``GET /v1/realtime`` upgraded; one JSON event a message,
audio both ways as base64 PCM16 at 24 kHz inside events."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from services.edge import events, metrics
from services.edge.audio import PlaybackClock
from services.edge.events import Event
from services.edge.inbound import InboundBudget
from services.edge.protocol import REALTIME_AUDIO_RATE
from services.edge.registry import ServerFull, SessionRegistry
from services.edge.session import Session
from services.edge.settings import EdgeSettings

log = logging.getLogger(__name__)

# Event text a client has not read yet (about 40 s of the assistant's audio); beyond it the
# client is not reading, and its session ends at once: its replies would cost the models as
# much as anyone's, for nobody (four such clients slowed everyone else's turns 4x).
MAX_UNSENT_BYTES = 2 * 1024 * 1024


class Outbox:
    """Server events waiting to be sent, as JSON text, with the bytes not yet sent counted."""

    def __init__(self, max_unsent_bytes: int) -> None:
        self._queue: asyncio.Queue[str | None] = asyncio.Queue()
        self._max = max_unsent_bytes
        self.unsent = 0
        self.overflowed = asyncio.Event()

    def put(self, event: Event) -> None:
        text = json.dumps(event)
        self.unsent += len(text)
        self._queue.put_nowait(text)
        if self.unsent > self._max:
            self.overflowed.set()

    def end(self) -> None:
        self._queue.put_nowait(None)

    async def get(self) -> str | None:
        return await self._queue.get()

    def sent(self, text: str) -> None:
        self.unsent -= len(text)


READ_LIMIT_BYTES = 32 * 1024 * 1024


class RealtimeWebSocket(web.WebSocketResponse):
    """aiohttp closes a socket whose message is beyond ``max_msg_size`` with 1009 on its own;
    the client is told why first, with an error event like any other refused input."""

    def __init__(self, max_event_bytes: int, **options: Any) -> None:
        # Messages over the event limit are still read, up to READ_LIMIT_BYTES, so the session
        # answers them with an error event and goes on (closing a socket with unread data resets
        # it, and the client may never see why); larger ones are not read at all.
        super().__init__(max_msg_size=max(2 * max_event_bytes, READ_LIMIT_BYTES), **options)
        self._max_event_bytes = max_event_bytes

    async def close(self, *, code: int = WSCloseCode.OK, message: bytes = b"", drain: bool = True) -> bool:
        if code == WSCloseCode.MESSAGE_TOO_BIG and not self.closed:
            error = events.error(
                "event_too_large",
                f"an event may be at most {self._max_event_bytes} bytes; this one was far larger, so the "
                "connection is closed",
                kind="invalid_request_error",
            )
            with contextlib.suppress(Exception):
                await self.send_str(json.dumps(events.to_wire(error)))
            message = message or b"event too large"
        return await super().close(code=code, message=message, drain=drain)


class WebSocketEndpoint:
    def __init__(self, settings: EdgeSettings, registry: SessionRegistry) -> None:
        self._settings = settings
        self._registry = registry

    async def handle(self, request: web.Request) -> web.StreamResponse:
        ws = RealtimeWebSocket(self._settings.max_event_bytes, protocols=("realtime",), heartbeat=30)
        await ws.prepare(request)
        outbox = Outbox(MAX_UNSENT_BYTES)
        try:
            session = self._registry.open("websocket", outbox.put, request.query.get("model"))
        except ServerFull as full:
            await ws.send_json(events.to_wire(events.error("server_full", str(full))))
            await ws.close(code=WSCloseCode.TRY_AGAIN_LATER, message=b"server full")
            return ws
        session.output = PlaybackClock(REALTIME_AUDIO_RATE, session.send_audio_delta)
        sender = asyncio.create_task(self._send_events(ws, outbox, session))
        not_reading = asyncio.create_task(self._end_if_not_reading(request, outbox, session))
        budget = InboundBudget.of_client(self._settings)
        session.start()
        try:
            async for message in ws:
                if message.type in (WSMsgType.TEXT, WSMsgType.BINARY):  # JSON in a binary frame still parses
                    await session.handle_text(message.data)
                    await budget.hold_back(len(message.data), session.closed)  # TCP holds the client back
                if session.closed.is_set():
                    break
        finally:
            not_reading.cancel()
            await self._registry.release(session)
            outbox.end()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(sender, timeout=5)
            sender.cancel()
            await ws.close()
        return ws

    @staticmethod
    async def _end_if_not_reading(request: web.Request, outbox: Outbox, session: Session) -> None:
        """A client that stops reading: end its session (its replies stop) and drop the
        connection (nothing more can reach it, a close frame included)."""
        await outbox.overflowed.wait()
        metrics.SLOW_CLIENTS.inc()
        log.warning("client not reading; session ended", extra={"session": session.session_id, "unsent": outbox.unsent})
        await session.close("client not reading")
        if request.transport is not None:
            request.transport.abort()

    async def _send_events(self, ws: web.WebSocketResponse, outbox: Outbox, session: Session) -> None:
        """Send queued events in order; once the session closes (whoever closed it), what is
        queued, then a close frame: 1001 when the server is going away, 1000 otherwise."""

        async def end_when_closed() -> None:
            await session.closed.wait()
            outbox.end()

        watcher = asyncio.create_task(end_when_closed())
        try:
            with contextlib.suppress(ConnectionError, RuntimeError):
                while (text := await outbox.get()) is not None:
                    await ws.send_str(text)
                    outbox.sent(text)
                going_away = session.close_reason == "server shutting down"
                code = WSCloseCode.GOING_AWAY if going_away else WSCloseCode.OK
                await ws.close(code=code, message=session.close_reason.encode()[:120] or b"session closed")
        finally:
            watcher.cancel()
