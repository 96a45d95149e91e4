"""The official ``openai`` SDK's realtime client, pointed at the edge, runs a text and a voice turn."""

from __future__ import annotations

import asyncio
import base64

import numpy as np
from openai import AsyncOpenAI

from services.common.audio import float32_to_pcm16
from tests.support.processes import ServiceProcess
from tests.support.speech import piper_voice_at
from tests.support.transcribe import spoken_words


def _client(edge: ServiceProcess) -> AsyncOpenAI:
    return AsyncOpenAI(base_url=edge.url.rstrip("/") + "/v1", api_key="not-needed-on-loopback")


async def test_text_turn_streams_a_text_reply(edge_service: ServiceProcess) -> None:
    async with _client(edge_service).realtime.connect(model="parley") as connection:
        await connection.session.update(session={"type": "realtime", "output_modalities": ["text"]})
        await connection.conversation.item.create(
            item={
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "What is the capital of France?"}],
            }
        )
        await connection.response.create()
        deltas: list[str] = []
        seen: list[str] = []
        async for event in connection:
            seen.append(event.type)
            if event.type == "error":
                raise AssertionError(f"error event: {event.error}")
            if event.type == "response.output_text.delta":
                deltas.append(event.delta)
            if event.type == "response.done":
                response = event.response
                break
    assert seen[0] == "session.created"
    assert seen.index("response.created") < seen.index("response.output_text.delta") < seen.index("response.done")
    assert response.status == "completed"
    assert len(deltas) > 2, "the reply streams in pieces"
    assert "Paris" in "".join(deltas)
    assert response.output[0].content[0].text == "".join(deltas)  # type: ignore[union-attr]
    assert response.usage is not None and response.usage.output_tokens > 0


async def test_voice_turn_is_transcribed_and_answered_with_audio(edge_service: ServiceProcess) -> None:
    speech = piper_voice_at("What is the capital of France?", 24000)
    pcm = float32_to_pcm16(np.concatenate((np.zeros(4800, np.float32), speech, np.zeros(36000, np.float32))))
    async with _client(edge_service).realtime.connect(model="parley") as connection:

        async def microphone() -> None:
            step = 24000 * 2 // 10  # 100 ms a message
            for start in range(0, len(pcm), step):
                await connection.input_audio_buffer.append(audio=base64.b64encode(pcm[start : start + step]).decode())

        sending = asyncio.create_task(microphone())
        transcript = reply = ""
        audio: list[bytes] = []
        seen: list[str] = []
        async for event in connection:
            seen.append(event.type)
            if event.type == "error":
                raise AssertionError(f"error event: {event.error}")
            if event.type == "conversation.item.input_audio_transcription.completed":
                transcript = event.transcript
            elif event.type == "response.output_audio_transcript.done":
                reply = event.transcript
            elif event.type == "response.output_audio.delta":
                audio.append(base64.b64decode(event.delta))
            elif event.type == "response.done":
                status = event.response.status
                break
        await sending
    for earlier, later in [
        ("input_audio_buffer.speech_started", "input_audio_buffer.speech_stopped"),
        ("input_audio_buffer.speech_stopped", "input_audio_buffer.committed"),
        ("response.created", "response.output_audio.delta"),
        ("response.output_audio.delta", "response.done"),
    ]:
        assert seen.index(earlier) < seen.index(later), f"{earlier} should come before {later}"
    assert status == "completed"
    assert {"capital", "france"} <= set(spoken_words(transcript)), transcript
    assert "Paris" in reply
    samples = np.frombuffer(b"".join(audio), dtype="<i2")
    assert len(samples) > 24000 * 0.8, "at least most of a second of speech comes back"
    assert np.abs(samples).max() > 3000, "the reply's audio is not silence"
