"""SIGTERM: every client is told why and gets a clean end within the drain, a reply under way
ends with its response.done, and the edge exits cleanly (it used to drop every connection)."""

from __future__ import annotations

import asyncio

import aiohttp

from tests.support.conformance import check_server_event
from tests.support.processes import ServiceProcess, start_edge
from tests.support.realtime_ws import RealtimeSocket
from tests.support.webrtc_client import RealtimeCall

LONG_QUESTION = {
    "type": "conversation.item.create",
    "item": {
        "type": "message",
        "role": "user",
        "content": [{"type": "input_text", "text": "Tell me about the history of Paris."}],
    },
}


async def _rest(ws: aiohttp.ClientWebSocketResponse, socket: RealtimeSocket) -> aiohttp.WSMessage:
    """Read events until the socket ends; the message that ended it."""
    while True:
        message = await ws.receive()
        if message.type != aiohttp.WSMsgType.TEXT:
            return message
        socket.events.append(check_server_event(message.data))


async def test_sigterm_tells_every_client_and_closes_cleanly(
    vad_service: ServiceProcess, scripted_llm: ServiceProcess, tts_service: ServiceProcess
) -> None:
    edge = start_edge(vad_service, scripted_llm, tts_service, "--drain-seconds=5")
    url = edge.url.rstrip("/").replace("http", "ws", 1) + "/v1/realtime?model=parley"
    call = RealtimeCall(edge.url)
    try:
        async with aiohttp.ClientSession() as http:
            sockets = [await http.ws_connect(url) for _ in range(2)]
            clients = [RealtimeSocket(ws) for ws in sockets]
            for client in clients:
                await client.next_event("session.created")
            await call.connect({"type": "realtime", "parley": {"mode": "chat"}})
            await call.wait_for("session.created")
            talking = clients[0]  # a reply under way when the signal comes
            await talking.send(LONG_QUESTION)
            await talking.send({"type": "response.create"})
            await talking.next_event("response.output_audio.delta", timeout=60)

            edge.terminate()
            endings = await asyncio.wait_for(
                asyncio.gather(*(_rest(ws, c) for ws, c in zip(sockets, clients, strict=True))), 30
            )
            await call.wait_for("error", timeout=30)
            assert await asyncio.to_thread(edge.process.wait, 30) == 0
    finally:
        await call.close()
        edge.stop()
    for client, ending in zip(clients, endings, strict=True):
        assert ending.type == aiohttp.WSMsgType.CLOSE, ending
        assert ending.data == aiohttp.WSCloseCode.GOING_AWAY, ending
        errors = client.of_type("error")
        assert [e["error"]["code"] for e in errors] == ["server_shutting_down"], errors
    done = talking.of_type("response.done")
    assert done and done[-1]["response"]["status"] == "cancelled", "the reply under way ended with its response.done"
    assert talking.events.index(talking.of_type("error")[0]) < talking.events.index(done[-1])
    assert call.of_type("error")[-1]["error"]["code"] == "server_shutting_down", "WebRTC clients hear it too"
