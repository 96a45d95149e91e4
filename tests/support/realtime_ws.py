"""A plain WebSocket client of the edge's Realtime API, for tests that look at raw events."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import numpy as np

from services.common.audio import float32_to_pcm16
from tests.support.conformance import check_server_event


class RealtimeSocket:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.events: list[dict[str, Any]] = []

    async def send(self, event: dict[str, Any]) -> None:
        await self.ws.send_str(json.dumps(event))

    async def send_raw(self, text: str) -> None:
        await self.ws.send_str(text)

    async def next_event(self, *types: str, timeout: float = 30) -> dict[str, Any]:  # noqa: ASYNC109
        """The next event of one of ``types`` (all events are kept in ``events``)."""
        async with asyncio.timeout(timeout):
            while True:
                message = await self.ws.receive()
                if message.type != aiohttp.WSMsgType.TEXT:
                    raise ConnectionError(f"socket closed: {message.type.name} {message.data!r} {message.extra!r}")
                event = check_server_event(message.data)  # every event, strictly as the API defines it
                self.events.append(event)
                if event["type"] in types:
                    return event

    async def append_audio(self, samples: np.ndarray, chunk_ms: int = 100, real_time: bool = False) -> None:
        """Send 24 kHz float samples as input_audio_buffer.append events."""
        pcm = float32_to_pcm16(samples)
        step = 24000 * 2 * chunk_ms // 1000
        for start in range(0, len(pcm), step):
            chunk = base64.b64encode(pcm[start : start + step]).decode()
            await self.send({"type": "input_audio_buffer.append", "audio": chunk})
            if real_time:
                await asyncio.sleep(chunk_ms / 1000)  # a live microphone's pace

    def of_type(self, event_type: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] == event_type]

    def audio(self) -> np.ndarray:
        """Assistant audio received so far (24 kHz int16)."""
        chunks = [
            np.frombuffer(base64.b64decode(e["delta"]), dtype="<i2")
            for e in self.of_type("response.output_audio.delta")
        ]
        return np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16)


@asynccontextmanager
async def realtime_socket(base_url: str, **headers: str) -> AsyncIterator[RealtimeSocket]:
    url = base_url.rstrip("/").replace("http", "ws", 1) + "/v1/realtime?model=parley"
    async with aiohttp.ClientSession() as http, http.ws_connect(url, headers=headers, max_msg_size=0) as ws:
        yield RealtimeSocket(ws)


class UnreadSocket:
    """A WebSocket client of the edge that sends events and never reads anything back: the
    kernel's buffers fill, then the edge's (a client that stopped reading, or a slow reader)."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self._writer = writer

    @classmethod
    async def connect(cls, base_url: str) -> UnreadSocket:
        host, port = base_url.split("//", 1)[1].rstrip("/").rsplit(":", 1)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # little room: the edge sees it soon
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (host, int(port)))
        _, writer = await asyncio.open_connection(sock=sock)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            f"GET /v1/realtime?model=parley HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        await writer.drain()
        return cls(writer)

    async def send(self, event: dict[str, Any]) -> None:
        """One masked text frame (clients must mask)."""
        payload, mask = json.dumps(event).encode(), os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        length = len(payload)
        header = bytes([0x81, 0x80 | length]) if length < 126 else bytes([0x81, 0xFE]) + length.to_bytes(2, "big")
        self._writer.write(header + mask + masked)
        await self._writer.drain()

    def close(self) -> None:
        self._writer.close()
