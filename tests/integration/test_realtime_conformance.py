"""OpenAI Realtime conformance over the real stack: every server event validates strictly against
the official SDK's types (tests/support/conformance.py checks each as the test clients receive
it), the fields clients send are accepted, and events come in the API's order."""

from __future__ import annotations

import numpy as np

from tests.support.conformance import SEEN
from tests.support.processes import ServiceProcess
from tests.support.realtime_ws import RealtimeSocket, realtime_socket
from tests.support.speech import piper_voice_at
from tests.support.webrtc_client import RealtimeCall

# What the frameworks send first (Pipecat, LiveKit, the Agents SDK): fields Parley does not use
# among them. Each used to refuse the whole update.
FRAMEWORK_SESSION = {
    "type": "realtime",
    "model": "gpt-realtime",
    "instructions": "Answer in one short sentence.",
    "output_modalities": ["audio"],
    "tools": [],
    "tool_choice": "auto",
    "tracing": "auto",
    "truncation": "auto",
    "include": ["item.input_audio_transcription.logprobs"],
    "prompt": None,
    "max_output_tokens": "inf",
    "audio": {
        "input": {
            "format": {"type": "audio/pcm", "rate": 24000},
            "noise_reduction": {"type": "near_field"},
            "transcription": {"model": "gpt-4o-mini-transcribe", "language": "en"},
            "turn_detection": {"type": "server_vad", "silence_duration_ms": 500, "interrupt_response": True},
        },
        "output": {"format": {"type": "audio/pcm", "rate": 24000}, "voice": "alloy", "speed": 1.0},
    },
}


def _question(text: str) -> np.ndarray:
    speech = piper_voice_at(text, 24000)
    return np.concatenate((np.zeros(4800, np.float32), speech, np.zeros(24000, np.float32)))


def _types(socket: RealtimeSocket) -> list[str]:
    return [e["type"] for e in socket.events]


async def test_a_framework_session_over_websocket_conforms_event_by_event(edge_service: ServiceProcess) -> None:
    async with realtime_socket(edge_service.url) as socket:
        await socket.next_event("session.created")
        await socket.send({"type": "session.update", "event_id": "setup", "session": FRAMEWORK_SESSION})
        updated = await socket.next_event("session.updated", "error")
        assert updated["type"] == "session.updated", updated
        session = updated["session"]
        assert session["audio"]["output"]["voice"] != "alloy", "an OpenAI voice name maps to one of the server's"
        assert session["tracing"] is None and session["tools"] == []

        # A voice turn: the item is committed and added before any of its transcription.
        await socket.append_audio(_question("What is the capital of France?"))
        done = await socket.next_event("response.done", timeout=60)
        assert done["response"]["status"] == "completed", done
        types = _types(socket)
        first_transcription = min(i for i, t in enumerate(types) if t.startswith("conversation.item.input_audio"))
        assert types.index("input_audio_buffer.committed") < first_transcription
        user_added = next(
            i
            for i, e in enumerate(socket.events)
            if e["type"] == "conversation.item.added" and e["item"]["role"] == "user"
        )
        assert user_added < first_transcription
        assert not socket.of_type("parley.input_audio_transcription.partial"), "Parley's own events only when asked"
        usage = socket.of_type("conversation.item.input_audio_transcription.completed")[-1]["usage"]
        assert usage["type"] == "duration" and usage["seconds"] > 1, "the seconds of speech transcribed"
        voice_response_id = done["response"]["id"]
        reply = done["response"]["output"][0]
        assert reply["content"][0]["type"] == "output_audio" and "Paris" in reply["content"][0]["transcript"]

        # The items as the client knows them, and a truncate a little past the audio's end.
        user_item = socket.of_type("input_audio_buffer.committed")[-1]["item_id"]
        await socket.send({"type": "conversation.item.retrieve", "item_id": user_item})
        retrieved = await socket.next_event("conversation.item.retrieved")
        assert "France" in retrieved["item"]["content"][0]["transcript"]
        audio_ms = len(socket.audio()) * 1000 // 24000
        await socket.send(
            {
                "type": "conversation.item.truncate",
                "item_id": reply["id"],
                "content_index": 0,
                "audio_end_ms": audio_ms + 1,
            }
        )
        truncated = await socket.next_event("conversation.item.truncated", "error")
        assert truncated["type"] == "conversation.item.truncated", truncated
        assert truncated["audio_end_ms"] <= audio_ms
        await socket.send({"type": "conversation.item.retrieve", "item_id": "item_nowhere"})
        assert (await socket.next_event("error"))["error"]["code"] == "item_not_found"

        # A text response with metadata, which comes back in the response object.
        await socket.send({"type": "session.update", "session": {"audio": {"input": {"turn_detection": None}}}})
        await socket.next_event("session.updated")
        await socket.send(
            {
                "type": "conversation.item.create",
                "item": {
                    "type": "message",
                    "role": "user",
                    "content": [{"type": "input_text", "text": "Capital of Italy?"}],
                },
            }
        )
        await socket.send(
            {"type": "response.create", "response": {"output_modalities": ["text"], "metadata": {"request": "r-42"}}}
        )
        created = await socket.next_event("response.created")
        assert created["response"]["metadata"] == {"request": "r-42"}
        done = await socket.next_event("response.done", timeout=60)
        assert done["response"]["metadata"] == {"request": "r-42"}
        assert done["response"]["conversation_id"] == created["response"]["conversation_id"] is not None
        assert done["response"]["output"][0]["content"][0]["type"] == "output_text"

        # The output buffer cleared names the response whose audio it held last (over WebSocket
        # too): the voice reply's, the text reply had none.
        await socket.send({"type": "output_audio_buffer.clear"})
        cleared = await socket.next_event("output_audio_buffer.cleared")
        assert cleared["response_id"] == voice_response_id
        await socket.send({"type": "input_audio_buffer.clear"})
        await socket.next_event("input_audio_buffer.cleared")
    expected = {
        "session.created",
        "session.updated",
        "input_audio_buffer.speech_started",
        "input_audio_buffer.speech_stopped",
        "input_audio_buffer.committed",
        "input_audio_buffer.cleared",
        "conversation.item.added",
        "conversation.item.done",
        "conversation.item.retrieved",
        "conversation.item.truncated",
        "conversation.item.input_audio_transcription.completed",
        "response.created",
        "response.output_item.added",
        "response.output_item.done",
        "response.content_part.added",
        "response.content_part.done",
        "response.output_audio_transcript.delta",
        "response.output_audio_transcript.done",
        "response.output_audio.delta",
        "response.output_audio.done",
        "response.output_text.delta",
        "response.output_text.done",
        "response.done",
        "output_audio_buffer.cleared",
        "error",
    }
    assert expected <= set(_types(socket)), expected - set(_types(socket))
    assert expected <= set(SEEN), "every event was checked against the SDK's types as it arrived"


async def test_a_webrtc_call_conforms_event_by_event(edge_service: ServiceProcess) -> None:
    call = RealtimeCall(edge_service.url)
    try:
        await call.connect({"type": "realtime", "parley": {"mode": "half_duplex"}})
        await call.wait_for("session.created")
        call.microphone.play(_question("What is the capital of France?"))
        done = await call.wait_for("response.done", timeout=60)
        assert done["response"]["status"] == "completed", done
        await call.wait_for("output_audio_buffer.stopped", timeout=30)
        types = [e["type"] for e in call.events]
        assert {"output_audio_buffer.started", "output_audio_buffer.stopped"} <= set(types)
        committed = types.index("input_audio_buffer.committed")
        assert all(
            i > committed for i, t in enumerate(types) if t.startswith("conversation.item.input_audio_transcription")
        )
    finally:
        await call.close()  # fails if any event did not conform


async def test_idle_timeout_makes_the_model_speak_after_a_silence(edge_service: ServiceProcess) -> None:
    """server_vad's idle_timeout_ms: once the reply has been heard out, that much silence
    triggers input_audio_buffer.timeout_triggered and a response."""
    async with realtime_socket(edge_service.url) as socket:
        await socket.next_event("session.created")
        detection = {"type": "server_vad", "silence_duration_ms": 500, "idle_timeout_ms": 5000}
        await socket.send(
            {
                "type": "session.update",
                "session": {"output_modalities": ["text"], "audio": {"input": {"turn_detection": detection}}},
            }
        )
        await socket.next_event("session.updated")
        await socket.append_audio(_question("What is the capital of France?"))
        first = await socket.next_event("response.done", timeout=60)
        triggered = await socket.next_event("input_audio_buffer.timeout_triggered", timeout=30)
        second = await socket.next_event("response.done", timeout=60)
    assert first["response"]["status"] == "completed" and second["response"]["status"] == "completed"
    assert triggered["audio_end_ms"] >= triggered["audio_start_ms"]
    types = _types(socket)
    at = types.index("input_audio_buffer.timeout_triggered")
    assert types[at + 1] == "input_audio_buffer.committed" and "response.created" in types[at:]
