"""``parley.v1.VoiceActivityService``: one DetectStream per call, inference through the batcher."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable

import grpc
import numpy as np
from parley.v1 import audio_pb2, vad_pb2, vad_pb2_grpc

from services.common.audio import AudioFormatError, pcm16_to_float32
from services.common.server import InvalidRequest, Lifecycle, RequestError
from services.common.streams import StreamGuard, StreamMetrics
from services.vad import metrics
from services.vad.batcher import InferenceBatcher, InferenceJob
from services.vad.model import SUPPORTED_RATES, context_samples, initial_state, window_samples
from services.vad.segmenter import SegmenterConfig, SpeechEnd, SpeechEvent, SpeechSegmenter, SpeechStart
from services.vad.settings import VadSettings
from services.vad.turn_model import WINDOW_SECONDS, TurnScorer
from services.vad.turns import RecentAudio, TurnConfig, TurnEnd, TurnEndReason, TurnTracker

log = logging.getLogger(__name__)

# A stream is judged against real time over this much audio, so one slow step is not a warning.
REALTIME_CHECK_SECONDS = 1.0


class UnsupportedRequest(RequestError):
    """A request this server is not set up to serve; ends the call with FAILED_PRECONDITION."""

    code = grpc.StatusCode.FAILED_PRECONDITION


_TURN_END_REASONS = {
    TurnEndReason.COMPLETE: vad_pb2.TURN_END_REASON_COMPLETE,
    TurnEndReason.MAX_WAIT: vad_pb2.TURN_END_REASON_MAX_WAIT,
    TurnEndReason.STREAM_END: vad_pb2.TURN_END_REASON_STREAM_END,
}


def resolve_config(config: vad_pb2.DetectConfig, defaults: VadSettings) -> vad_pb2.DetectConfig:
    """Check a client's DetectConfig and fill in the server's defaults."""
    if config.sample_rate not in SUPPORTED_RATES:
        raise InvalidRequest(f"sample_rate must be 8000 or 16000, got {config.sample_rate}")
    resolved = vad_pb2.DetectConfig(
        sample_rate=config.sample_rate,
        threshold=config.threshold if config.HasField("threshold") else defaults.threshold,
        min_silence_ms=config.min_silence_ms if config.HasField("min_silence_ms") else defaults.min_silence_ms,
        speech_pad_ms=config.speech_pad_ms if config.HasField("speech_pad_ms") else defaults.speech_pad_ms,
        min_speech_ms=config.min_speech_ms if config.HasField("min_speech_ms") else defaults.min_speech_ms,
        emit_probabilities=config.emit_probabilities,
    )
    if config.HasField("turn_detection"):
        turn = config.turn_detection
        resolved.turn_detection.CopyFrom(
            vad_pb2.TurnDetectionConfig(
                completion_threshold=turn.completion_threshold
                if turn.HasField("completion_threshold")
                else defaults.turn_completion_threshold,
                max_wait_ms=turn.max_wait_ms if turn.HasField("max_wait_ms") else defaults.turn_max_wait_ms,
            )
        )
        if not 0 < resolved.turn_detection.completion_threshold < 1:
            raise InvalidRequest(
                "turn_detection.completion_threshold must be between 0 and 1 (exclusive), "
                f"got {resolved.turn_detection.completion_threshold:g}"
            )
        if resolved.turn_detection.max_wait_ms > 10_000:
            raise InvalidRequest(f"turn_detection.max_wait_ms must be at most 10000, got {turn.max_wait_ms}")
    if not 0 < resolved.threshold < 1:
        raise InvalidRequest(f"threshold must be between 0 and 1 (exclusive), got {resolved.threshold:g}")
    for name, limit in (("min_silence_ms", 10_000), ("speech_pad_ms", 2000), ("min_speech_ms", 10_000)):
        if getattr(resolved, name) > limit:
            raise InvalidRequest(f"{name} must be at most {limit}, got {getattr(resolved, name)}")
    return resolved


class DetectStream:
    """The state of one Detect call: model state, unanalysed samples, segmentation."""

    def __init__(
        self,
        stream_id: int,
        config: vad_pb2.DetectConfig,
        batcher: InferenceBatcher,
        max_chunk_ms: int,
        clock: Callable[[], float] = time.perf_counter,
        turn_scorer: TurnScorer | None = None,
    ):
        self.id = stream_id
        self._clock = clock
        self.config = config
        self.rate = config.sample_rate
        self.window = window_samples(self.rate)
        self._batcher = batcher
        self._max_chunk_samples = self.rate * max_chunk_ms // 1000
        self._state = initial_state()
        self._context = np.zeros(context_samples(self.rate), dtype=np.float32)
        self._pending = np.empty(0, dtype=np.float32)
        self._segmenter = SpeechSegmenter(
            SegmenterConfig(
                sample_rate=self.rate,
                threshold=config.threshold,
                min_silence_ms=config.min_silence_ms,
                speech_pad_ms=config.speech_pad_ms,
                min_speech_ms=config.min_speech_ms,
            )
        )
        self._turns: TurnTracker | None = None
        self._recent: RecentAudio | None = None
        self._turn_scorer = turn_scorer
        if config.HasField("turn_detection"):
            if turn_scorer is None:
                raise UnsupportedRequest(
                    "this VAD server runs without the turn model (started with --no-turn-detection)"
                )
            self._turns = TurnTracker(
                TurnConfig(
                    completion_threshold=config.turn_detection.completion_threshold,
                    max_wait_samples=self.rate * config.turn_detection.max_wait_ms // 1000,
                )
            )
            self._recent = RecentAudio(self.rate * WINDOW_SECONDS)
        self.received = 0  # samples received
        self.processed = 0  # samples analysed (whole windows)
        self._busy_seconds = 0.0
        self._audio_seconds = 0.0

    def ready(self) -> vad_pb2.DetectResponse:
        return vad_pb2.DetectResponse(ready=vad_pb2.DetectReady(config=self.config, window_samples=self.window))

    async def analyse(self, chunk: audio_pb2.AudioChunk) -> AsyncGenerator[vad_pb2.DetectResponse, None]:
        """Analyse a chunk, yielding its responses in order as each is known: a pause goes out
        before its turn score is computed, so the client can act on the pause meanwhile."""
        started = self._clock()
        handing_over = 0.0  # time the consumer took with the responses: not this stream's work
        samples = self._decode(chunk)
        self.received += len(samples)
        if self._recent is not None:
            self._recent.append(samples)
        buffered = np.concatenate((self._pending, samples)) if len(self._pending) else samples
        whole = len(buffered) // self.window * self.window
        self._pending = buffered[whole:]
        if whole:
            job = InferenceJob(self.rate, buffered[:whole].reshape(-1, self.window), self._state, self._context)
            await self._batcher.run(job)
            self._state, self._context = job.state, job.context
            async with contextlib.aclosing(self._segment(job.probabilities)) as responses:
                async for response in responses:
                    handed = self._clock()
                    yield response
                    handing_over += self._clock() - handed
        busy = self._clock() - started - handing_over
        metrics.CHUNKS.inc()
        metrics.CHUNK_SECONDS.observe(busy)
        metrics.AUDIO_SECONDS.inc(len(samples) / self.rate)
        self._check_realtime(busy, len(samples) / self.rate)

    def finish(self) -> list[vad_pb2.DetectResponse]:
        """The client closed its side: end a segment and a turn still open at the last sample received."""
        event = self._segmenter.finish(self.received)
        responses = [self._event_response(event)] if event else []
        if self._turns is not None:
            if event:
                self._turns.speech_ended(event.end)
            ended = self._turns.finish(self.received)
            if ended:
                responses.append(self._turn_ended(ended))
        return responses

    def _decode(self, chunk: audio_pb2.AudioChunk) -> np.ndarray:
        if chunk.sample_rate and chunk.sample_rate != self.rate:
            raise InvalidRequest(f"audio chunk sample_rate {chunk.sample_rate} differs from the configured {self.rate}")
        if chunk.offset_samples and chunk.offset_samples != self.received:
            raise InvalidRequest(
                f"audio chunk offset_samples {chunk.offset_samples} does not follow the previous chunk "
                f"(expected {self.received}); send the stream's audio contiguously"
            )
        if not chunk.pcm16:
            raise InvalidRequest("empty audio chunk")
        n_samples = len(chunk.pcm16) // 2
        if n_samples > self._max_chunk_samples:
            raise InvalidRequest(
                f"audio chunk of {n_samples} samples is longer than the limit of {self._max_chunk_samples} "
                f"({self._max_chunk_samples * 1000 // self.rate} ms); send smaller chunks"
            )
        try:
            return pcm16_to_float32(chunk.pcm16)
        except AudioFormatError as exc:
            raise InvalidRequest(str(exc)) from None

    async def _segment(self, probabilities: np.ndarray) -> AsyncGenerator[vad_pb2.DetectResponse, None]:
        first = self.processed
        for index, probability in enumerate(probabilities.tolist()):
            start = first + index * self.window
            self.processed = start + self.window
            event = self._segmenter.push(probability, start, self.processed)
            if event:
                yield self._event_response(event)
            if self._turns is not None:
                for response in await self._follow_turn(event):
                    yield response
        if self.config.emit_probabilities:
            # After the chunk's events: a client reading processed_samples as progress knows that
            # nothing more will be said of the audio before it.
            yield vad_pb2.DetectResponse(
                probabilities=vad_pb2.SpeechProbabilities(
                    offset_samples=first, window_samples=self.window, probabilities=probabilities.tolist()
                ),
                processed_samples=self.processed,
            )

    async def _follow_turn(self, event: SpeechEvent | None) -> list[vad_pb2.DetectResponse]:
        """Turn events after one analysed window: a pause is scored at once (its SpeechEnded has
        gone out already; the stream waits for the score, ~40 ms, so events stay in order); a
        long enough silence ends a turn."""
        assert self._turns is not None and self._recent is not None and self._turn_scorer is not None
        if isinstance(event, SpeechStart):
            self._turns.speech_started(event.start)
            return []
        if not isinstance(event, SpeechEnd):
            ended = self._turns.silence_until(self.processed)
            return [self._turn_ended(ended)] if ended else []
        self._turns.speech_ended(event.end)
        assert self._turns.turn_start is not None
        audio = self._recent.since(self._turns.turn_start, self.processed)
        probability, seconds = await self._turn_scorer.score(audio, self.rate)
        metrics.TURN_SCORING_SECONDS.observe(seconds)
        metrics.TURN_PROBABILITY.observe(probability)
        metrics.EVENTS.labels("turn_scored").inc()
        ended = self._turns.scored(probability)
        responses = [
            vad_pb2.DetectResponse(
                turn_scored=vad_pb2.TurnScored(
                    end_offset_samples=event.end,
                    probability=probability,
                    complete=ended is not None,
                    audio_ms=len(audio) * 1000 // self.rate,
                    inference_ms=seconds * 1000,
                ),
                processed_samples=self.processed,
            )
        ]
        if ended:
            responses.append(self._turn_ended(ended))
        return responses

    def _turn_ended(self, ended: TurnEnd) -> vad_pb2.DetectResponse:
        metrics.EVENTS.labels("turn_ended").inc()
        metrics.TURNS.labels(ended.reason.name.lower()).inc()
        return vad_pb2.DetectResponse(
            turn_ended=vad_pb2.TurnEnded(
                start_offset_samples=ended.start,
                end_offset_samples=ended.end,
                reason=_TURN_END_REASONS[ended.reason],
                probability=ended.probability,
                scorings=ended.scorings,
            ),
            processed_samples=self.processed,
        )

    def _event_response(self, event: SpeechEvent) -> vad_pb2.DetectResponse:
        if isinstance(event, SpeechStart):
            metrics.EVENTS.labels("speech_started").inc()
            return vad_pb2.DetectResponse(
                speech_started=vad_pb2.SpeechStarted(start_offset_samples=event.start),
                processed_samples=self.processed,
            )
        assert isinstance(event, SpeechEnd)
        metrics.EVENTS.labels("speech_ended").inc()
        return vad_pb2.DetectResponse(
            speech_ended=vad_pb2.SpeechEnded(start_offset_samples=event.start, end_offset_samples=event.end),
            processed_samples=self.processed,
        )

    def _check_realtime(self, busy_seconds: float, audio_seconds: float) -> None:
        self._busy_seconds += busy_seconds
        self._audio_seconds += audio_seconds
        if self._audio_seconds < REALTIME_CHECK_SECONDS:
            return
        if self._busy_seconds > self._audio_seconds:
            metrics.BEHIND_REALTIME.inc()
            log.warning(
                "stream is falling behind real time",
                extra={
                    "stream": self.id,
                    "audio_s": round(self._audio_seconds, 3),
                    "processing_s": round(self._busy_seconds, 3),
                },
            )
        self._busy_seconds = self._audio_seconds = 0.0


class VoiceActivityServicer(vad_pb2_grpc.VoiceActivityServiceServicer):
    """Serves Detect streams; every stream has its own model state."""

    def __init__(
        self,
        settings: VadSettings,
        batcher: InferenceBatcher,
        lifecycle: Lifecycle,
        turn_scorer: TurnScorer | None = None,
    ) -> None:
        self._settings = settings
        self._batcher = batcher
        self._turn_scorer = turn_scorer
        self._guard = StreamGuard(
            "VAD",
            lifecycle,
            StreamMetrics(errors=metrics.STREAM_ERRORS, opened=metrics.STREAMS, active=metrics.STREAMS_ACTIVE),
            max_streams=settings.max_streams,
            draining_message="the VAD server is shutting down; open a new stream",
        )

    async def Detect(  # noqa: N802 - the gRPC method name
        self, request_iterator: AsyncIterator[vad_pb2.DetectRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[vad_pb2.DetectResponse]:
        async with contextlib.aclosing(self._guard.serve(request_iterator, context, self._detect)) as responses:
            async for response in responses:
                yield response

    async def _detect(
        self, requests: AsyncIterator[vad_pb2.DetectRequest], stream_id: int
    ) -> AsyncGenerator[vad_pb2.DetectResponse, None]:
        stream: DetectStream | None = None
        async for request in requests:
            kind = request.WhichOneof("request")
            if kind == "config":
                if stream is not None:
                    raise InvalidRequest("the stream is already configured; send the config only once")
                stream = DetectStream(
                    stream_id,
                    resolve_config(request.config, self._settings),
                    self._batcher,
                    self._settings.max_chunk_ms,
                    turn_scorer=self._turn_scorer,
                )
                yield stream.ready()
            elif kind == "audio":
                if stream is None:
                    raise InvalidRequest("audio before config: the first request must be a DetectConfig")
                async with contextlib.aclosing(stream.analyse(request.audio)) as responses:
                    async for response in responses:
                        yield response
            else:
                raise InvalidRequest("empty DetectRequest: set config or audio")
        if stream is not None:
            for response in stream.finish():
                yield response
