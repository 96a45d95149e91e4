"""The edge's Reply against fakes of the LLM and TTS calls.

A turn held at a tentative pause keeps its events and audio back; released, it sends them in
the order they came (a reply that finished while held used to send its response.done before its
audio, so a WebSocket client saw no audio delta in its response). A turn whose service says
nothing, or whose input cannot be sent, fails with an error instead of staying open for ever."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
from parley.v1 import audio_pb2, conversation_pb2, speech_pb2

from services.edge import events
from services.edge.reply import Reply, ReplyOptions


def _wire(sent: list[dict[str, Any]]) -> Callable[[Any], None]:
    """An emit function keeping each event as it goes on the wire."""
    return lambda event: sent.append(events.to_wire(event))


class FakeCall:
    """A bidirectional gRPC call whose responses are given in advance; ``gate`` holds them back."""

    def __init__(self, responses: list[Any], gate: asyncio.Event | None = None) -> None:
        self._responses = responses
        self._gate = gate
        self._cancelled = asyncio.Event()
        self.written: list[Any] = []

    async def write(self, request: Any) -> None:
        self.written.append(request)

    async def done_writing(self) -> None:
        return None

    def cancel(self) -> bool:
        self._cancelled.set()
        return True

    async def _stream(self) -> AsyncIterator[Any]:
        if self._gate is not None:
            opened = asyncio.ensure_future(self._gate.wait())
            cancelled = asyncio.ensure_future(self._cancelled.wait())
            await asyncio.wait({opened, cancelled}, return_when=asyncio.FIRST_COMPLETED)
            opened.cancel()
            cancelled.cancel()
        for response in self._responses:
            if self._cancelled.is_set():
                raise asyncio.CancelledError  # as a cancelled grpc.aio call does
            yield response

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._stream()


class FakeServices:
    """ModelServices with one scripted LLM reply and one piece of speech for it."""

    def __init__(self, llm_gate: asyncio.Event | None = None) -> None:
        self._llm_gate = llm_gate
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
        return FakeCall(self._llm_responses, self._llm_gate)

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


def _options(**changes: Any) -> ReplyOptions:
    options = ReplyOptions(
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
    for name, value in changes.items():
        setattr(options, name, value)
    return options


async def test_a_reply_finished_while_held_is_released_audio_before_response_done() -> None:
    log: list[str] = []
    turn = Reply(FakeServices(), _options(), RecordingOutput(log), lambda e: log.append(e.type), None).start()  # type: ignore[arg-type]
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
    turn = Reply(FakeServices(), _options(), RecordingOutput(log), lambda e: log.append(e.type), None).start()  # type: ignore[arg-type]
    turn.hold()
    turn.end_input()
    await asyncio.wait_for(turn.task, 5)
    turn.discard()
    turn.release()
    assert log == []


async def test_a_silent_llm_fails_the_reply_once_its_deadline_passes() -> None:
    sent: list[dict[str, Any]] = []
    never = asyncio.Event()
    options = _options(respond_at_once=True, stall_seconds=0.2)
    turn = Reply(FakeServices(llm_gate=never), options, RecordingOutput([]), _wire(sent), None).start()  # type: ignore[arg-type]
    turn.send_text("Hello?")
    turn.end_input()
    await asyncio.wait_for(turn.task, 5)
    types = [e["type"] for e in sent]
    assert types[0] == "response.created" and types[-1] == "response.done"
    error = next(e for e in sent if e["type"] == "error")["error"]
    assert error["code"] == "service_unavailable"
    assert sent[-1]["response"]["status"] == "failed"


async def test_input_that_cannot_be_sent_fails_the_turn_at_once() -> None:
    """A value protobuf refuses (2**40 tokens in a uint32) used to kill the input writer
    silently: the LLM service waited for a header and the reply never ended."""
    sent: list[dict[str, Any]] = []
    options = _options(respond_at_once=True, max_output_tokens=2**40, stall_seconds=600)
    never = asyncio.Event()
    turn = Reply(FakeServices(llm_gate=never), options, RecordingOutput([]), _wire(sent), None).start()  # type: ignore[arg-type]
    turn.end_input()
    await asyncio.wait_for(turn.task, 5)
    types = [e["type"] for e in sent]
    assert types[0] == "response.created" and types[-1] == "response.done"
    assert next(e for e in sent if e["type"] == "error")["error"]["code"] == "service_error"
    assert sent[-1]["response"]["status"] == "failed"


class FailingTtsServices(FakeServices):
    """The TTS call fails; the LLM's reply, cut at its token limit, ends only after that."""

    def __init__(self) -> None:
        super().__init__()
        self.tts_failed = asyncio.Event()
        reply = conversation_pb2.RespondResponse
        self._llm_responses[-1] = reply(
            done=conversation_pb2.TurnDone(finish_reason=conversation_pb2.FINISH_REASON_LENGTH)
        )

    def Respond(self) -> FakeCall:  # noqa: N802
        return LastWaitsCall(self._llm_responses, self.tts_failed)

    def Synthesize(self) -> FakeCall:  # noqa: N802
        return BrokenCall([], failed=self.tts_failed)


class LastWaitsCall(FakeCall):
    def __init__(self, responses: list[Any], before_last: asyncio.Event) -> None:
        super().__init__(responses)
        self._before_last = before_last

    async def _stream(self) -> AsyncIterator[Any]:
        for index, response in enumerate(self._responses):
            if index == len(self._responses) - 1:
                await self._before_last.wait()
            yield response


class BrokenCall(FakeCall):
    def __init__(self, responses: list[Any], failed: asyncio.Event) -> None:
        super().__init__(responses)
        self._failed = failed

    async def _stream(self) -> AsyncIterator[Any]:
        self._failed.set()
        raise grpc.aio.AioRpcError(grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), grpc.aio.Metadata(), "gone")
        yield  # an async generator


async def test_a_reply_whose_speech_failed_is_failed_even_if_it_hit_its_token_limit() -> None:
    sent: list[dict[str, Any]] = []
    turn = Reply(FailingTtsServices(), _options(), RecordingOutput([]), _wire(sent), None).start()  # type: ignore[arg-type]
    turn.end_input()
    await asyncio.wait_for(turn.task, 5)
    assert next(e for e in sent if e["type"] == "error")["error"]["code"] == "service_unavailable"
    assert sent[-1]["type"] == "response.done"
    assert sent[-1]["response"]["status"] == "failed", sent[-1]["response"]


class PartialsServices(FakeServices):
    """The LLM service's partial transcripts come while the user speaks (``gate`` holds the rest
    back until the turn's input has ended), then the final one and a reply."""

    def __init__(self, gate: asyncio.Event) -> None:
        super().__init__()
        self._gate = gate
        self.partials_read = asyncio.Event()  # the turn has handled both partials
        reply = conversation_pb2.RespondResponse
        self._partials = [
            reply(user_transcript=conversation_pb2.UserTranscript(text="What is")),
            reply(user_transcript=conversation_pb2.UserTranscript(text="What is the capital")),
        ]

    def Respond(self) -> FakeCall:  # noqa: N802
        services = self

        class PartialsFirst(FakeCall):
            async def _stream(self) -> AsyncIterator[Any]:
                for response in services._partials:
                    yield response
                services.partials_read.set()  # asked for more: the last partial has been handled
                await services._gate.wait()
                async for response in FakeCall(services._llm_responses)._stream():
                    yield response

        return PartialsFirst([])


async def test_a_voice_turns_words_go_out_only_once_its_user_item_is_committed() -> None:
    """The API sends an item's transcription after input_audio_buffer.committed and
    conversation.item.added; live partials go out only to sessions that ask for them."""
    for live in (False, True):
        sent: list[dict[str, Any]] = []
        gate = asyncio.Event()
        services = PartialsServices(gate)
        turn = Reply(services, _options(live_transcripts=live), RecordingOutput([]), _wire(sent), None).start()  # type: ignore[arg-type]
        await asyncio.wait_for(services.partials_read.wait(), 5)
        assert not [e for e in sent if e["type"].startswith("conversation.item.input_audio_transcription")]
        partials = [e["transcript"] for e in sent if e["type"] == "parley.input_audio_transcription.partial"]
        assert partials == (["What is", "What is the capital"] if live else [])
        sent.append({"type": "committed (the session's events)"})
        turn.user_item_committed()
        turn.end_input()
        gate.set()
        await asyncio.wait_for(turn.task, 5)
        types = [e["type"] for e in sent]
        committed = types.index("committed (the session's events)")
        delta = types.index("conversation.item.input_audio_transcription.delta")
        completed = types.index("conversation.item.input_audio_transcription.completed")
        assert committed < delta < completed < types.index("response.done")
        assert sent[delta]["delta"] == "What is the capital"
        assert sent[completed]["transcript"] == "Hi there."
