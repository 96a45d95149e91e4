"""A model service that dies mid-session: the client is told, the edge keeps going, and the next
turn works once the service is back."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from tests.support.processes import ServiceProcess, start_edge, start_service
from tests.support.realtime_ws import RealtimeSocket, realtime_socket


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def own_tts() -> Iterator[list[ServiceProcess]]:
    """A TTS service of this test's own (a list: the test replaces it when it restarts it)."""
    services = [start_service("services.tts", port=_free_port())]
    yield services
    for service in services:
        service.stop()


async def _spoken_turn(socket: RealtimeSocket, question: str) -> dict:
    start = len(socket.events)
    await socket.send(
        {
            "type": "conversation.item.create",
            "item": {"type": "message", "role": "user", "content": [{"type": "input_text", "text": question}]},
        }
    )
    await socket.send({"type": "response.create"})
    done = await socket.next_event("response.done", timeout=60)
    done["audio_deltas"] = [e for e in socket.events[start:] if e["type"] == "response.output_audio.delta"]
    done["errors"] = [e for e in socket.events[start:] if e["type"] == "error"]
    return done


async def test_tts_killed_and_restarted_mid_session(
    vad_service: ServiceProcess, scripted_llm: ServiceProcess, own_tts: list[ServiceProcess]
) -> None:
    tts = own_tts[0]
    port = int(tts.grpc_address.rsplit(":", 1)[1])
    edge = start_edge(vad_service, scripted_llm, tts)
    try:
        async with realtime_socket(edge.url) as session:
            await session.next_event("session.created")
            await session.send({"type": "session.update", "session": {"type": "realtime", "parley": {"mode": "chat"}}})
            first = await _spoken_turn(session, "What is the capital of France?")
            assert first["response"]["status"] == "completed" and first["audio_deltas"]

            tts.process.kill()
            tts.process.wait()
            broken = await _spoken_turn(session, "What is the capital of Italy?")
            assert broken["response"]["status"] == "failed"
            assert broken["errors"] and broken["errors"][0]["error"]["code"] == "service_unavailable"
            assert "speech synthesis" in broken["errors"][0]["error"]["message"]
            assert broken["response"]["status_details"]["error"]["message"]
            # The reply's text still reached the client (shown, if not spoken).
            assert broken["response"]["output"][0]["content"][0]["transcript"]
            assert not broken["audio_deltas"]

            own_tts.append(start_service("services.tts", port=port))  # back on the same address
            again = await _spoken_turn(session, "What is the capital of Spain?")
            assert again["response"]["status"] == "completed", again["errors"]
            assert again["audio_deltas"], "the next turn is spoken again"
        assert edge.process.poll() is None, "the edge survived"
    finally:
        assert edge.stop() == 0
