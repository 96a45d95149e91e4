"""The Realtime API over WebSocket: ``GET /v1/realtime`` upgraded; one JSON event a message,
audio both ways as base64 PCM16 at 24 kHz inside events."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging

from aiohttp import WSCloseCode, WSMsgType, web

from services.edge import events
from services.edge.audio import PlaybackClock
from services.edge.events import Event
from services.edge.protocol import REALTIME_AUDIO_RATE
from services.edge.registry import ServerFull, SessionRegistry
from services.edge.settings import EdgeSettings

log = logging.getLogger(__name__)

# Events a client has not read yet; beyond this it is too slow and the session ends.
_MAX_UNSENT_EVENTS = 20_000


class WebSocketEndpoint:
    def __init__(self, settings: EdgeSettings, registry: SessionRegistry) -> None:
        self._settings = settings
        self._registry = registry

    async def handle(self, request: web.Request) -> web.StreamResponse:
        # Messages a little over the event limit still arrive, so the session can answer them
        # with an error event; far larger ones make aiohttp close the socket (1009).
        ws = web.WebSocketResponse(
            protocols=("realtime",), heartbeat=30, max_msg_size=2 * self._settings.max_event_bytes
        )
        await ws.prepare(request)
        outbox: asyncio.Queue[Event | None] = asyncio.Queue()

        def send(event: Event) -> None:
            outbox.put_nowait(event)

        try:
            session = self._registry.open("websocket", send, request.query.get("model"))
        except ServerFull as full:
            await ws.send_json({"event_id": events.new_id("event"), **events.error("server_full", str(full))})
            await ws.close(code=WSCloseCode.TRY_AGAIN_LATER, message=b"server full")
            return ws
        session.output = PlaybackClock(REALTIME_AUDIO_RATE, session.send_audio_delta)
        sender = asyncio.create_task(self._send_events(ws, outbox, session.closed))
        session.start()
        try:
            async for message in ws:
                if message.type == WSMsgType.TEXT:
                    await session.handle_text(message.data)
                elif message.type == WSMsgType.BINARY:
                    await session.handle_text(message.data)  # JSON sent as a binary frame still parses
                if session.closed.is_set() or outbox.qsize() > _MAX_UNSENT_EVENTS:
                    break
        finally:
            await self._registry.release(session)
            outbox.put_nowait(None)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(sender, timeout=5)
            sender.cancel()
            await ws.close()
        return ws

    async def _send_events(
        self, ws: web.WebSocketResponse, outbox: asyncio.Queue[Event | None], closed: asyncio.Event
    ) -> None:
        """Send queued events in order; after the session closes, what is queued, then close."""
        with contextlib.suppress(ConnectionError, RuntimeError):
            while True:
                event = await outbox.get()
                if event is None:
                    return
                await ws.send_str(json.dumps(event))
                if closed.is_set() and outbox.empty():
                    await ws.close(code=WSCloseCode.OK, message=b"session closed")
                    return
