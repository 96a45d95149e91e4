"""Fakes of the model services and a virtual clock, to run a real edge ``Session`` in milliseconds.

A scenario runs on ``VirtualClockLoop``: its time moves only when every task waits, straight to
the next timer, so "the user speaks 0.5-2.0 s, the LLM's first token comes 80 ms after the end
of input, the TTS makes 60 ms of audio a character" plays out exactly, the same on any machine
and under any load. The session, its turns, its VAD stream and its playback clock are the edge's
own code; only what stands behind gRPC is fake:

- ``FakeVad`` runs the VAD service's own stream logic (``DetectStream``: segmentation, pauses,
  semantic turns) over a fake model that hears speech wherever the input is loud, and a fake turn
  model whose scores the scenario gives;
- ``FakeLlm`` answers each ``Respond`` with the scenario's ``Reply`` (transcript, reply text, delays);
- ``FakeTts`` speaks each piece of text as a tone of ``ms_per_char`` a character, with segments.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import math
import selectors
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import grpc
import numpy as np
from parley.v1 import audio_pb2, conversation_pb2, speech_pb2

from services.common.words import bare_words
from services.edge.audio import INPUT_RATE, PlaybackClock
from services.edge.pool import ReplicaLimits
from services.edge.session import Session
from services.edge.settings import EdgeSettings
from services.vad.servicer import DetectStream, resolve_config
from services.vad.settings import VadSettings

OUTPUT_RATE = 24000  # the WebSocket transport's
_CHUNK_SECONDS = 0.02  # a microphone sends 20 ms frames


class _VirtualSelector:
    """A selector that never blocks: when nothing is ready it moves its loop's clock on by the
    time the loop would have waited. Nothing is ready but the loop's own wake-up pipe, so a wait
    with no timer at all is a scenario that can never go on."""

    def __init__(self, selector: selectors.BaseSelector, loop: VirtualClockLoop) -> None:
        self._selector = selector
        self._loop = loop

    def select(self, timeout: float | None = None) -> list[Any]:
        ready = self._selector.select(0)
        if ready or timeout == 0:
            return ready
        if timeout is None:
            raise RuntimeError("the scenario is stuck: every task waits and no timer is set")
        self._loop.advance(timeout)
        return []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._selector, name)


class VirtualClockLoop(asyncio.SelectorEventLoop):
    """An event loop on virtual time, starting at 0."""

    def __init__(self) -> None:
        super().__init__()
        self._now = 0.0
        self._selector = _VirtualSelector(self._selector, self)  # type: ignore[has-type]

    def time(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += max(0.0, seconds)


def run(scenario: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run a scenario coroutine on a fresh virtual clock. A task that ended with an exception
    (one nobody would see) or a callback that raised fails the scenario."""
    tasks: list[asyncio.Task[Any]] = []
    unhandled: list[str] = []

    def task_factory(loop: asyncio.AbstractEventLoop, coro: Any, **options: Any) -> asyncio.Task[Any]:
        task = asyncio.Task(coro, loop=loop, **options)
        tasks.append(task)
        return task

    with asyncio.Runner(loop_factory=VirtualClockLoop) as runner:
        loop = runner.get_loop()
        loop.set_task_factory(task_factory)
        loop.set_exception_handler(lambda _, context: unhandled.append(context["message"]))
        runner.run(scenario())
    failed = [t for t in tasks if t.done() and not t.cancelled() and t.exception() is not None]
    assert not unhandled and not failed, [*unhandled, *(f"{t.get_name()}: {t.exception()!r}" for t in failed)]


# The gRPC side.

_END = object()
_CANCELLED = object()


def rpc_error(code: grpc.StatusCode, details: str) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details)


class FakeStream:
    """A bidirectional streaming call to a fake service: what the client writes reaches ``serve``,
    what ``serve`` sends comes out of the iterator; an ``AioRpcError`` raised in ``serve`` ends the
    call with that status, and ``cancel()`` ends it as a cancelled grpc.aio call does."""

    def __init__(self, serve: Callable[[FakeStream], Awaitable[None]]) -> None:
        self.written: list[Any] = []
        self.cancelled = False
        self._requests: asyncio.Queue[Any] = asyncio.Queue()
        self._responses: asyncio.Queue[Any] = asyncio.Queue()
        self._task = asyncio.get_running_loop().create_task(self._serve(serve))

    async def _serve(self, serve: Callable[[FakeStream], Awaitable[None]]) -> None:
        try:
            await serve(self)
            self._responses.put_nowait(_END)
        except grpc.aio.AioRpcError as error:
            self._responses.put_nowait(error)

    # The client's side.

    async def write(self, request: Any) -> None:
        if self.cancelled or self._task.done():
            raise asyncio.InvalidStateError("RPC already finished")
        self.written.append(request)
        self._requests.put_nowait(request)

    async def done_writing(self) -> None:
        self._requests.put_nowait(_END)

    def cancel(self) -> bool:
        if self.cancelled or self._task.done():
            return False
        self.cancelled = True
        self._task.cancel()
        self._responses.put_nowait(_CANCELLED)
        return True

    def __aiter__(self) -> Any:
        return self._responses_in_order()

    async def _responses_in_order(self) -> Any:
        while True:
            response = await self._responses.get()
            if response is _END:
                return
            if response is _CANCELLED:
                raise asyncio.CancelledError
            if isinstance(response, grpc.aio.AioRpcError):
                raise response
            yield response

    # The service's side.

    async def read(self) -> Any:
        """The next request; None once the client is done writing."""
        request = await self._requests.get()
        return None if request is _END else request

    def send(self, response: Any) -> None:
        self._responses.put_nowait(response)


class _LoudnessModel:
    """Stands in for Silero behind the VAD's batcher: speech wherever a window is louder than -40 dBFS."""

    async def run(self, job: Any) -> None:
        rms = np.sqrt(np.mean(np.square(job.windows), axis=1))
        job.probabilities[:] = np.where(rms > 0.01, 0.95, 0.02)


class _ScriptedTurnModel:
    """Stands in for Smart Turn: the scenario's scores, one per pause, then ``default``."""

    def __init__(self, scores: list[float], default: float = 0.9) -> None:
        self.scores = list(scores)
        self.default = default
        self.scored = 0

    async def score(self, audio: np.ndarray, sample_rate: int) -> tuple[float, float]:
        self.scored += 1
        return (self.scores.pop(0) if self.scores else self.default), 0.0


class FakeVad:
    """``VoiceActivityService.Detect`` with the service's own stream logic over fake models."""

    def __init__(self) -> None:
        self.turn_model = _ScriptedTurnModel([])
        self.streams: list[FakeStream] = []
        self.fail_after: float | None = None  # loop time after which the open stream fails (UNAVAILABLE)
        self._ids = itertools.count(1)

    def Detect(self) -> FakeStream:  # noqa: N802 (the gRPC method's name)
        stream = FakeStream(self._detect)
        self.streams.append(stream)
        return stream

    async def _detect(self, call: FakeStream) -> None:
        request = await call.read()
        config = resolve_config(request.config, VadSettings())
        stream = DetectStream(next(self._ids), config, _LoudnessModel(), 1000, turn_scorer=self.turn_model)  # type: ignore[arg-type]
        call.send(stream.ready())
        loop = asyncio.get_running_loop()
        while (request := await call.read()) is not None:
            if self.fail_after is not None and loop.time() >= self.fail_after:
                self.fail_after = None
                raise rpc_error(grpc.StatusCode.UNAVAILABLE, "the VAD service went away")
            async for response in stream.analyse(request.audio):
                call.send(response)


@dataclass
class Reply:
    """How the fake LLM answers a turn."""

    text: str = "Rome is the capital of Italy."
    transcript: str = "what is the capital of italy"
    asr_ms: float = 40  # final transcript, after the end of input
    first_token_ms: float = 80  # after the final transcript
    token_ms: float = 20
    fail_after_tokens: int | None = None  # the service fails (UNAVAILABLE) after this many tokens


@dataclass
class RespondCall:
    """What one Respond call received."""

    header: conversation_pb2.TurnHeader
    audio_samples: int = 0
    cuts: list[tuple[str, str]] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    opened_at: float = 0.0  # loop time of the header
    input_ended_at: float | None = None  # loop time of EndOfInput
    stream: FakeStream | None = None


class FakeLlm:
    """``ConversationService``: each Respond answered with ``reply``; the unary calls recorded."""

    def __init__(self) -> None:
        self.reply = Reply()
        self.calls: list[RespondCall] = []
        self.truncations: list[tuple[str, str]] = []  # (turn id, heard text) of TruncateReply
        # The words' end-of-turn score of a transcript (its closing punctuation stripped), sent
        # after it when the header asks; None: no score comes.
        self.words_score: Callable[[str], float | None] = lambda words: 0.01
        self.scored_words: list[str] = []  # the words a turn asked to have scored
        self.ended_sessions: list[str] = []

    def Respond(self) -> FakeStream:  # noqa: N802 (the gRPC method's name)
        return FakeStream(self._respond)

    async def _respond(self, call: FakeStream) -> None:
        first = await call.read()
        loop = asyncio.get_running_loop()
        record = RespondCall(first.header, opened_at=loop.time(), stream=call)
        self.calls.append(record)
        reply = self.reply
        while (request := await call.read()) is not None:
            kind = request.WhichOneof("request")
            if kind == "end_of_input":
                record.input_ended_at = loop.time()
                break
            if kind == "audio":
                record.audio_samples += len(request.audio.pcm16) // 2
            elif kind == "cut_reply":
                record.cuts.append((request.cut_reply.turn_id, request.cut_reply.heard_text))
            elif kind == "text":
                record.texts.append(request.text.text)
        await asyncio.sleep(reply.asr_ms / 1000)
        if record.audio_samples:
            transcript = conversation_pb2.UserTranscript(text=reply.transcript, is_final=True)
            call.send(conversation_pb2.RespondResponse(user_transcript=transcript))
            words = bare_words(reply.transcript)
            if record.header.score_end_of_turn and words:
                self.scored_words.append(words)
                if (score := self.words_score(words)) is not None:
                    end_of_turn = conversation_pb2.EndOfTurnScore(probability=score)
                    call.send(conversation_pb2.RespondResponse(end_of_turn=end_of_turn))
        if not record.header.transcribe_only:
            await asyncio.sleep(reply.first_token_ms / 1000)
            for index, word in enumerate(reply.text.split(" ")):
                if reply.fail_after_tokens is not None and index >= reply.fail_after_tokens:
                    raise rpc_error(grpc.StatusCode.UNAVAILABLE, "the LLM service went away")
                delta = word if index == 0 else " " + word
                call.send(conversation_pb2.RespondResponse(text_delta=conversation_pb2.TextDelta(text=delta)))
                await asyncio.sleep(reply.token_ms / 1000)
        done = conversation_pb2.TurnDone(finish_reason=conversation_pb2.FINISH_REASON_STOP, reply_text=reply.text)
        call.send(conversation_pb2.RespondResponse(done=done))

    async def TruncateReply(self, request: Any, timeout: float | None = None) -> Any:  # noqa: N802, ASYNC109
        self.truncations.append((request.turn_id, request.heard_text))
        return conversation_pb2.TruncateReplyResponse()

    async def EndSession(self, request: Any, timeout: float | None = None) -> Any:  # noqa: N802, ASYNC109
        self.ended_sessions.append(request.session_id)
        return conversation_pb2.EndSessionResponse()


class FakeTts:
    """``SpeechSynthesisService.Synthesize``: each piece of text as ``ms_per_char`` of tone a
    character, ``first_audio_ms`` after the first text, with the piece's segment after its audio."""

    def __init__(self) -> None:
        self.ms_per_char = 60.0
        self.first_audio_ms = 50.0
        self.fail_after_pieces: int | None = None

    def Synthesize(self) -> FakeStream:  # noqa: N802 (the gRPC method's name)
        return FakeStream(self._synthesize)

    async def _synthesize(self, call: FakeStream) -> None:
        config = (await call.read()).config
        rate = config.sample_rate
        offset, pieces = 0, 0
        while (request := await call.read()) is not None:
            if request.WhichOneof("request") == "end_of_text":
                break
            if pieces == 0:
                await asyncio.sleep(self.first_audio_ms / 1000)
            if self.fail_after_pieces is not None and pieces >= self.fail_after_pieces:
                raise rpc_error(grpc.StatusCode.UNAVAILABLE, "the TTS service went away")
            pieces += 1
            samples = int(len(request.text) * self.ms_per_char * rate / 1000)
            call.send(speech_pb2.SynthesizeResponse(audio=audio_pb2.AudioChunk(pcm16=tone(samples, rate, 330))))
            segment = speech_pb2.SpokenSegment(
                text=request.text, start_offset_samples=offset, end_offset_samples=offset + samples
            )
            call.send(speech_pb2.SynthesizeResponse(segment=segment))
            offset += samples
        call.send(speech_pb2.SynthesizeResponse(done=speech_pb2.SynthesisDone(total_samples=offset)))

    async def ListVoices(self, request: Any, timeout: float | None = None) -> Any:  # noqa: N802, ASYNC109
        return speech_pb2.ListVoicesResponse(voices=[speech_pb2.Voice(name="fake")], default_voice="fake")


class FakeServices:
    """What a session sees of ``ModelServices``: the fakes, always ready."""

    def __init__(self) -> None:
        self.vad = FakeVad()
        self.llm = FakeLlm()
        self.tts = FakeTts()
        self.limits = ReplicaLimits()

    async def ensure_ready(self, name: str, wait_seconds: float = 1.5) -> None:
        return None


def tone(samples: int, rate: int, hz: float, amplitude: float = 0.25) -> bytes:
    """A steady tone as PCM16: loud enough to be speech to the fake VAD, and nothing like the
    assistant's voice to the echo guard (its bands do not move)."""
    t = np.arange(samples) / rate
    return (np.sin(2 * math.pi * hz * t) * amplitude * 32767).astype("<i2").tobytes()


# The client's side.


@dataclass
class Event:
    """A server event as the client got it, with the (virtual) time it was sent."""

    at: float
    type: str
    data: dict[str, Any]


class Scenario:
    """A real edge session on fakes, a scripted microphone, and the events it sent.

    ``speak(start, end)`` schedules the user's speech in seconds of scenario time; ``until(t)``
    runs the microphone (20 ms frames, in real time on the virtual clock) to ``t``."""

    def __init__(self, mode: str = "full_duplex", session: dict[str, Any] | None = None, **settings: Any) -> None:
        self.settings = EdgeSettings(**settings)
        self._mode = mode
        self.services = FakeServices()
        self.events: list[Event] = []
        self._update = session
        self._speech: list[tuple[float, float]] = []
        self._sent = 0  # microphone samples sent
        self.session = Session("sess_scenario", "websocket", self.settings, self.services, self._record)  # type: ignore[arg-type]
        self.output = PlaybackClock(OUTPUT_RATE, self.session.send_audio_delta)
        self.session.output = self.output

    def _record(self, event: dict[str, Any]) -> None:
        self.events.append(Event(asyncio.get_running_loop().time(), event["type"], event))

    async def __aenter__(self) -> Scenario:
        self.session.start()
        await self.client({"type": "session.update", "session": {"parley": {"mode": self._mode}}})
        if self._update is not None:
            await self.client({"type": "session.update", "session": self._update})
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.session.close()

    async def client(self, event: dict[str, Any]) -> None:
        """A client event, as the transport hands it over."""
        await self.session.handle_text(json.dumps(event))

    def speak(self, start: float, end: float) -> None:
        self._speech.append((start, end))

    async def until(self, t: float) -> None:
        """Send microphone audio in real time up to scenario time ``t``."""
        loop = asyncio.get_running_loop()
        frame = int(INPUT_RATE * _CHUNK_SECONDS)
        while (self._sent + frame) / INPUT_RATE <= t + 1e-9:
            start = self._sent / INPUT_RATE
            speaking = any(a <= start < b for a, b in self._speech)
            self.session.push_input(tone(frame, INPUT_RATE, 220) if speaking else bytes(frame * 2))
            self._sent += frame
            await asyncio.sleep(max(0.0, self._sent / INPUT_RATE - loop.time()))

    # Reading the events.

    def of(self, kind: str) -> list[Event]:
        return [event for event in self.events if event.type == kind]

    def first(self, kind: str) -> Event:
        found = self.of(kind)
        assert found, f"no {kind} among {[e.type for e in self.events]}"
        return found[0]

    def types(self) -> list[str]:
        return [event.type for event in self.events]

    def _playback(self, response_id: str) -> list[tuple[float, float]]:
        """(start, seconds) of each audio delta of a response, as a client playing it as it comes hears it."""
        pieces, ends = [], 0.0
        for event in self.of("response.output_audio.delta"):
            if event.data["response_id"] == response_id:
                seconds = len(base64.b64decode(event.data["delta"])) / 2 / OUTPUT_RATE
                start = max(ends, event.at)
                pieces.append((start, seconds))
                ends = start + seconds
        return pieces

    def playback_end(self, response_id: str) -> float:
        """When such a client has played all of a response's audio."""
        start, seconds = self._playback(response_id)[-1]
        return start + seconds

    def played_ms(self, response_id: str, at: float) -> float:
        """How much of a response's audio such a client has played by ``at``."""
        return sum(min(seconds, max(0.0, at - start)) for start, seconds in self._playback(response_id)) * 1000
