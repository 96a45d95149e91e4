"""A turn held at a tentative pause keeps its events and audio back; released, it sends them in
the order they came. A reply that finished while held used to send its response.done before its
audio, so a WebSocket client saw no audio delta in its response (the openai SDK voice turn)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from parley.v1 import audio_pb2, conversation_pb2, speech_pb2

from services.edge.turn import Turn, TurnOptions


class FakeCall:
    """A bidirectional gRPC call whose responses are given in advance; ``gate`` holds them back."""

    def __init__(self, responses: list[Any], gate: asyncio.Event | None = None) -> None:
        self._responses = responses
        self._gate = gate
        self.written: list[Any] = []

    async def write(self, request: Any) -> None:
        self.written.append(request)

    async def done_writing(self) -> None:
        return None

    def cancel(self) -> bool:
        return False

    async def _stream(self) -> AsyncIterator[Any]:
        if self._gate is not None:
            await self._gate.wait()
        for response in self._responses:
            yield response

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._stream()


class FakeServices:
    """ModelServices with one scripted LLM reply and one piece of speech for it."""

    def __init__(self) -> None:
        reply = conversation_pb2.RespondResponse
        self.llm = self
        self.tts = self
        self._llm_responses = [
            reply(user_transcript=conversation_pb2.UserTranscript(text="Hi there.", is_final=True)),
            reply(text_delta=conversation_pb2.TextDelta(text="Hello!")),
            reply(done=conversation_pb2.TurnDone(finish_reason=conversation_pb2.FINISH_REASON_STOP)),
        ]
        self.spoken = asyncio.Event()  # the TTS answers once the text has been sent

    async def ensure_ready(self, name: str) -> None:
        return None

    def Respond(self) -> FakeCall:  # noqa: N802 (a gRPC stub's method name)
        return FakeCall(self._llm_responses)

    def Synthesize(self) -> FakeCall:  # noqa: N802
        audio = speech_pb2.SynthesizeResponse(audio=audio_pb2.AudioChunk(pcm16=b"\x01\x00" * 480))
        done = speech_pb2.SynthesizeResponse(done=speech_pb2.SynthesisDone())
        return FakeCall([audio, done])


class RecordingOutput:
    """An AudioOutput that notes, among the events, where audio was written."""

    sample_rate = 24000
    on_played = None

    def __init__(self, log: list[str]) -> None:
        self._log = log
        self.played_samples = 0
        self.queued_samples = 0

    def write(self, pcm16: bytes) -> None:
        self._log.append("audio")


def _options() -> TurnOptions:
    return TurnOptions(
        session_id="sess_test",
        mode=conversation_pb2.CONVERSATION_MODE_HALF_DUPLEX,
        modalities=["audio"],
        voice="joe",
        speed=None,
        system_prompt=None,
        max_output_tokens=None,
        user_item_id="item_user",
        respond_at_once=False,
    )


async def test_a_reply_finished_while_held_is_released_audio_before_response_done() -> None:
    log: list[str] = []
    turn = Turn(FakeServices(), _options(), RecordingOutput(log), lambda e: log.append(e["type"]), None)  # type: ignore[arg-type]
    turn.hold()
    turn.end_input()
    await asyncio.wait_for(turn.task, 5)
    assert log == [], "nothing reaches the client while the turn is held"
    turn.release()
    assert "audio" in log and "response.done" in log
    assert log.index("response.created") < log.index("audio") < log.index("response.output_audio.done")
    assert log.index("audio") < log.index("response.done")
    assert log[-1] == "response.done"


async def test_a_discarded_turn_sends_nothing() -> None:
    log: list[str] = []
    turn = Turn(FakeServices(), _options(), RecordingOutput(log), lambda e: log.append(e["type"]), None)  # type: ignore[arg-type]
    turn.hold()
    turn.end_input()
    await asyncio.wait_for(turn.task, 5)
    turn.discard()
    turn.release()
    assert log == []
