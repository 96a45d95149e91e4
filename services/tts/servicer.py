"""``parley.v1.SpeechSynthesisService``: one SynthesisStream per Synthesize call, and ListVoices."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
from collections.abc import AsyncGenerator, AsyncIterator

import grpc
from parley.v1 import speech_pb2, speech_pb2_grpc

from services.common.limits import MAX_SPEECH_SPEED, MIN_SPEECH_SPEED
from services.common.server import InvalidRequest, Lifecycle
from services.common.streams import StreamGuard, StreamMetrics
from services.tts import metrics
from services.tts.scheduler import SynthesisScheduler
from services.tts.segmentation import SegmentLimits
from services.tts.settings import TtsSettings
from services.tts.stream import StreamConfig, StreamLimits, SynthesisStream
from services.tts.voices import VoiceCatalog

log = logging.getLogger(__name__)

SUPPORTED_RATES = (8000, 16000, 22050, 24000, 32000, 44100, 48000)
MIN_FIRST_PIECE, MAX_FIRST_PIECE = 8, 1000


def resolve_config(config: speech_pb2.SynthesisConfig, voices: VoiceCatalog) -> StreamConfig:
    """Check a client's SynthesisConfig; raise UnknownVoice or InvalidRequest with what to fix."""
    voice = voices.get(config.voice)
    rate = config.sample_rate or voice.info.native_sample_rate
    if rate not in SUPPORTED_RATES:
        raise InvalidRequest(
            f"sample_rate must be one of {', '.join(map(str, SUPPORTED_RATES))} "
            f"(or 0 for the voice's own {voice.info.native_sample_rate}), got {config.sample_rate}"
        )
    speed = config.speed if config.HasField("speed") else 1.0
    if not (math.isfinite(speed) and MIN_SPEECH_SPEED <= speed <= MAX_SPEECH_SPEED):
        raise InvalidRequest(f"speed must be between {MIN_SPEECH_SPEED} and {MAX_SPEECH_SPEED}, got {speed:g}")
    return StreamConfig(voice=voice, sample_rate=rate, speed=speed)


class SpeechSynthesisServicer(speech_pb2_grpc.SpeechSynthesisServiceServicer):
    """Serves Synthesize streams (each independent) and ListVoices."""

    def __init__(
        self, settings: TtsSettings, voices: VoiceCatalog, scheduler: SynthesisScheduler, lifecycle: Lifecycle
    ) -> None:
        self._settings = settings
        self._voices = voices
        self._scheduler = scheduler
        self._limits = StreamLimits(
            segments=SegmentLimits(
                first_max_chars=settings.first_segment_max_chars,
                clause_min_chars=settings.clause_min_chars,
                max_chars=settings.max_segment_chars,
            ),
            max_text_message_chars=settings.max_text_message_chars,
            max_backlog_chars=settings.max_backlog_chars,
            audio_chunk_ms=settings.audio_chunk_ms,
        )
        self._guard = StreamGuard(
            "TTS",
            lifecycle,
            StreamMetrics(errors=metrics.STREAM_ERRORS, opened=metrics.STREAMS, active=metrics.STREAMS_ACTIVE),
            max_streams=settings.max_streams,
            draining_message="the TTS server is shutting down; open a new stream",
        )

    def _limits_for(self, config: speech_pb2.SynthesisConfig) -> StreamLimits:
        """The stream's limits: the server's, with the client's first-piece length if it gave one."""
        if not config.HasField("first_segment_max_chars"):
            return self._limits
        chars = config.first_segment_max_chars
        if not MIN_FIRST_PIECE <= chars <= MAX_FIRST_PIECE:
            raise InvalidRequest(
                f"first_segment_max_chars must be between {MIN_FIRST_PIECE} and {MAX_FIRST_PIECE}, got {chars}"
            )
        return dataclasses.replace(
            self._limits, segments=dataclasses.replace(self._limits.segments, first_max_chars=chars)
        )

    async def ListVoices(  # noqa: N802 - the gRPC method name
        self, request: speech_pb2.ListVoicesRequest, context: grpc.aio.ServicerContext
    ) -> speech_pb2.ListVoicesResponse:
        return speech_pb2.ListVoicesResponse(
            voices=[
                speech_pb2.Voice(
                    name=info.name,
                    language=info.language,
                    native_sample_rate=info.native_sample_rate,
                    backend=info.backend,
                )
                for info in self._voices.infos()
            ],
            default_voice=self._voices.default,
        )

    async def Synthesize(  # noqa: N802 - the gRPC method name
        self, request_iterator: AsyncIterator[speech_pb2.SynthesizeRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[speech_pb2.SynthesizeResponse]:
        async with contextlib.aclosing(self._guard.serve(request_iterator, context, self._synthesize)) as responses:
            async for response in responses:
                yield response

    async def _synthesize(
        self, requests: AsyncIterator[speech_pb2.SynthesizeRequest], stream_id: int
    ) -> AsyncGenerator[speech_pb2.SynthesizeResponse, None]:
        first = await anext(requests, None)
        if first is None or first.WhichOneof("request") != "config":
            kind = "no request" if first is None else f"{first.WhichOneof('request') or 'an empty request'}"
            raise InvalidRequest(f"{kind} before config: the first request must be a SynthesisConfig")
        stream = SynthesisStream(
            stream_id,
            resolve_config(first.config, self._voices),
            self._limits_for(first.config),
            self._scheduler,
        )
        reader = asyncio.create_task(stream.read_text(requests), name=f"tts-read-{stream_id}")
        try:
            async with contextlib.aclosing(stream.responses()) as responses:
                async for response in responses:
                    yield response
        finally:
            # The reader must be done with the request iterator before it is closed.
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
        log.debug("stream done", extra={"stream": stream_id, "samples": stream.samples_sent})
