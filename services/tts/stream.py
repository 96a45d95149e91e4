"""One Synthesize call: text in (segmented as it arrives), audio out (a piece at a time).

Two loops joined by a bounded backlog: ``read_text`` takes requests, cuts the text into pieces
and queues them, waiting while the backlog is full (so gRPC flow control holds a fast sender
back instead of text piling up here); ``responses`` takes pieces in order, has each synthesised
on a worker thread and yields its audio, then a SpokenSegment. An error in the reading loop
overtakes the pieces still queued.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass

import numpy as np
import soxr
from parley.v1 import audio_pb2, speech_pb2

from services.common.audio import float32_to_pcm16
from services.common.server import InvalidRequest
from services.tts import metrics
from services.tts.backends import Cancellation, SpeechVoice
from services.tts.normalisation import CODE_BLOCK_PHRASE, normalise_for_speech, remove_control_characters
from services.tts.scheduler import SynthesisScheduler
from services.tts.segmentation import Segment, SegmentLimits, TextSegmenter

log = logging.getLogger(__name__)

# A reply's first piece starts where its voice does: Piper opens every synthesis with 25-35 ms of
# digital silence (-80 dBFS) before the first phoneme's onset, dead air before the answer.
# Samples below this level at the very start are dropped, all but a few milliseconds of them.
LEADING_SILENCE_FLOOR = 10 ** (-60 / 20)
LEADING_SILENCE_KEPT_MS = 5


def leading_silence(audio: np.ndarray, sample_rate: int) -> int:
    """How many samples at the start of ``audio`` are silence to drop (the onset and the few
    milliseconds before it stay)."""
    loud = np.flatnonzero(np.abs(audio) >= LEADING_SILENCE_FLOOR)
    onset = int(loud[0]) if loud.size else len(audio)
    return max(0, onset - sample_rate * LEADING_SILENCE_KEPT_MS // 1000)


@dataclass(frozen=True)
class StreamConfig:
    """A stream's settings, resolved and checked."""

    voice: SpeechVoice
    sample_rate: int
    speed: float


@dataclass(frozen=True)
class StreamLimits:
    segments: SegmentLimits
    max_text_message_chars: int
    max_backlog_chars: int
    audio_chunk_ms: int


@dataclass(frozen=True)
class SegmentAudio:
    """One piece's audio at the stream's rate, and what making it cost."""

    pcm16: bytes
    spoken_text: str
    synthesis_seconds: float

    @property
    def samples(self) -> int:
        return len(self.pcm16) // 2


class TextBacklog:
    """Pieces waiting for synthesis, bounded in characters; ``put`` waits while it is full."""

    def __init__(self, max_chars: int) -> None:
        self._max_chars = max_chars
        self._items: collections.deque[Segment] = collections.deque()
        self._chars = 0
        self._closed = False
        self._error: BaseException | None = None
        self._changed = asyncio.Condition()

    @property
    def chars(self) -> int:
        return self._chars

    async def put(self, segment: Segment) -> None:
        async with self._changed:
            # One piece is always let in, so a piece longer than the bound cannot stall the stream.
            await self._changed.wait_for(lambda: not self._items or self._chars < self._max_chars)
            self._items.append(segment)
            self._chars += len(segment.text)
            metrics.BACKLOG_CHARACTERS.inc(len(segment.text))
            self._changed.notify_all()

    async def get(self) -> Segment | None:
        """The next piece; None once the text has ended and all pieces are taken."""
        async with self._changed:
            await self._changed.wait_for(lambda: self._error is not None or self._items or self._closed)
            if self._error is not None:
                raise self._error
            if not self._items:
                return None
            segment = self._items.popleft()
            self._chars -= len(segment.text)
            metrics.BACKLOG_CHARACTERS.dec(len(segment.text))
            self._changed.notify_all()
            return segment

    async def close(self) -> None:
        async with self._changed:
            self._closed = True
            self._changed.notify_all()

    async def fail(self, error: BaseException) -> None:
        """Make the next ``get`` raise ``error``, ahead of any queued pieces."""
        async with self._changed:
            self._error = error
            self._changed.notify_all()

    def discard(self) -> None:
        """Forget queued pieces (the stream is over); keeps the backlog gauge true."""
        metrics.BACKLOG_CHARACTERS.dec(self._chars)
        self._items.clear()
        self._chars = 0


class SynthesisStream:
    """The state of one Synthesize call after its config."""

    def __init__(
        self,
        stream_id: int,
        config: StreamConfig,
        limits: StreamLimits,
        scheduler: SynthesisScheduler,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.id = stream_id
        self.config = config
        self._limits = limits
        self._scheduler = scheduler
        self._clock = clock
        self._segmenter = TextSegmenter(limits.segments)
        self._backlog = TextBacklog(limits.max_backlog_chars)
        self._chunk_samples = max(1, config.sample_rate * limits.audio_chunk_ms // 1000)
        self.samples_sent = 0
        self.characters_received = 0
        self._first_text_at: float | None = None
        self._first_segment_at: float | None = None
        self._first_audio_at: float | None = None
        self._synthesis_seconds = 0.0

    # --- reading ----------------------------------------------------------------------------

    async def read_text(self, requests: AsyncIterator[speech_pb2.SynthesizeRequest]) -> None:
        """Consume requests after the config until EndOfText (or the client half-closes)."""
        try:
            async for request in requests:
                kind = request.WhichOneof("request")
                if kind == "text":
                    await self._add_text(request.text)
                elif kind == "end_of_text":
                    break  # anything sent after EndOfText is not read
                elif kind == "config":
                    raise InvalidRequest("the stream is already configured; send the SynthesisConfig only once, first")
                else:
                    raise InvalidRequest("empty SynthesizeRequest: set config, text or end_of_text")
            for segment in self._segmenter.finish():
                await self._queue(segment)
            await self._backlog.close()
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # handed to the responding loop, which ends the call
            await self._backlog.fail(exc)

    async def _add_text(self, text: str) -> None:
        if len(text) > self._limits.max_text_message_chars:
            raise InvalidRequest(
                f"a text request of {len(text)} characters is longer than the limit of "
                f"{self._limits.max_text_message_chars}; send long text in several requests"
            )
        if self._first_text_at is None:
            self._first_text_at = self._clock()
        metrics.CHARACTERS_RECEIVED.inc(len(text))
        text = remove_control_characters(text)
        self.characters_received += len(text)
        for segment in self._segmenter.push(text):
            await self._queue(segment)

    async def _queue(self, segment: Segment) -> None:
        if self._first_segment_at is None:
            self._first_segment_at = self._clock()
        await self._backlog.put(segment)

    # --- responding -------------------------------------------------------------------------

    async def responses(self) -> AsyncGenerator[speech_pb2.SynthesizeResponse, None]:
        """Audio chunks and SpokenSegments as pieces are synthesised, then SynthesisDone."""
        try:
            while (segment := await self._backlog.get()) is not None:
                first = self.samples_sent == 0
                synthesis = functools.partial(self._synthesize, segment, first)
                audio = await self._scheduler.run(synthesis, self._deadline())
                start = self.samples_sent
                for response in self._audio_responses(audio.pcm16):
                    yield response
                self._account(segment, audio)
                yield speech_pb2.SynthesizeResponse(
                    segment=speech_pb2.SpokenSegment(
                        text=segment.text, start_offset_samples=start, end_offset_samples=self.samples_sent
                    )
                )
            yield speech_pb2.SynthesizeResponse(
                done=speech_pb2.SynthesisDone(total_samples=self.samples_sent, timings=self.timings())
            )
        finally:
            self._backlog.discard()

    def _spoken_text(self, segment: Segment) -> str:
        if segment.code:
            # One announcement per code block; its other pieces are shown, not read.
            return CODE_BLOCK_PHRASE if segment.opens_code_block else ""
        return normalise_for_speech(segment.text, self.config.voice.info.language)

    def _deadline(self) -> float:
        """When this stream's listener runs out of audio (now, before the first audio)."""
        if self._first_audio_at is None:
            return self._first_segment_at if self._first_segment_at is not None else self._clock()
        return self._first_audio_at + self.samples_sent / self.config.sample_rate

    def _synthesize(self, segment: Segment, first: bool, cancellation: Cancellation) -> SegmentAudio:
        """On a worker thread: normalise, synthesise, join sentences, resample to the stream's rate
        (the stream's ``first`` audio without its leading silence)."""
        started = time.perf_counter()
        voice = self.config.voice
        text = self._spoken_text(segment)
        pieces = list(voice.synthesize(text, self.config.speed, cancellation)) if text else []
        audio = np.concatenate(pieces) if pieces else np.zeros(0, np.float32)
        native = voice.info.native_sample_rate
        if len(audio) and native != self.config.sample_rate:
            audio = soxr.resample(audio, native, self.config.sample_rate, quality="HQ")
        if first:
            audio = audio[leading_silence(audio, self.config.sample_rate) :]
        return SegmentAudio(float32_to_pcm16(audio), text, time.perf_counter() - started)

    def _audio_responses(self, pcm16: bytes) -> list[speech_pb2.SynthesizeResponse]:
        responses = []
        step = 2 * self._chunk_samples
        for offset in range(0, len(pcm16), step):
            piece = pcm16[offset : offset + step]
            responses.append(
                speech_pb2.SynthesizeResponse(
                    audio=audio_pb2.AudioChunk(
                        pcm16=piece,
                        sample_rate=self.config.sample_rate,
                        offset_samples=self.samples_sent + offset // 2,
                    )
                )
            )
        if responses and self._first_audio_at is None:
            self._first_audio_at = self._clock()
            if self._first_segment_at is not None:
                metrics.FIRST_AUDIO_SECONDS.observe(self._first_audio_at - self._first_segment_at)
        return responses

    def _account(self, segment: Segment, audio: SegmentAudio) -> None:
        self.samples_sent += audio.samples
        self._synthesis_seconds += audio.synthesis_seconds
        audio_seconds = audio.samples / self.config.sample_rate
        metrics.SEGMENTS.inc()
        metrics.CHARACTERS.inc(len(segment.text))
        metrics.AUDIO_SECONDS.inc(audio_seconds)
        if audio_seconds:
            metrics.SYNTHESIS_SECONDS.observe(audio.synthesis_seconds)
            metrics.REALTIME_FACTOR.observe(audio.synthesis_seconds / audio_seconds)

    def timings(self) -> audio_pb2.Timings:
        """Stage durations for SynthesisDone (names documented in the README)."""
        durations = {
            "synthesis": self._synthesis_seconds * 1e3,
            "audio": self.samples_sent / self.config.sample_rate * 1e3,
        }
        if self._first_audio_at is not None:
            if self._first_text_at is not None:
                durations["first_audio"] = (self._first_audio_at - self._first_text_at) * 1e3
            if self._first_segment_at is not None:
                durations["first_segment_to_audio"] = (self._first_audio_at - self._first_segment_at) * 1e3
        return audio_pb2.Timings(durations_ms=durations)
