"""A plain client of parley.v1.VoiceActivityService for tests and benchmarks."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import numpy as np
from parley.v1 import audio_pb2, vad_pb2, vad_pb2_grpc

from services.common.audio import float32_to_pcm16


def config_request(sample_rate: int = 16000, **options: object) -> vad_pb2.DetectRequest:
    return vad_pb2.DetectRequest(config=vad_pb2.DetectConfig(sample_rate=sample_rate, **options))  # type: ignore[arg-type]


def audio_requests(samples: np.ndarray, sample_rate: int, chunk_ms: int) -> list[vad_pb2.DetectRequest]:
    chunk = sample_rate * chunk_ms // 1000
    pcm = float32_to_pcm16(samples)
    return [
        vad_pb2.DetectRequest(audio=audio_pb2.AudioChunk(pcm16=pcm[i : i + 2 * chunk]))
        for i in range(0, len(pcm), 2 * chunk)
    ]


async def detect(
    channel: grpc.aio.Channel, samples: np.ndarray, sample_rate: int = 16000, chunk_ms: int = 32, **options: object
) -> list[vad_pb2.DetectResponse]:
    """Send a whole recording as fast as the server takes it; return every response."""

    async def requests() -> AsyncIterator[vad_pb2.DetectRequest]:
        yield config_request(sample_rate, **options)
        for request in audio_requests(samples, sample_rate, chunk_ms):
            yield request

    call = vad_pb2_grpc.VoiceActivityServiceStub(channel).Detect(requests())
    return [response async for response in call]


def segments(responses: list[vad_pb2.DetectResponse]) -> list[tuple[int, int]]:
    """(start, end) of every speech_ended event, in samples."""
    return [
        (r.speech_ended.start_offset_samples, r.speech_ended.end_offset_samples)
        for r in responses
        if r.WhichOneof("event") == "speech_ended"
    ]
