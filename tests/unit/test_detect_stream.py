"""DetectStream without a model: chunk validation, windowing across chunks, real-time warnings."""

import itertools
import logging

import numpy as np
import pytest
from parley.v1 import audio_pb2, vad_pb2

from services.common.audio import float32_to_pcm16
from services.vad import metrics
from services.vad.batcher import InferenceJob
from services.vad.servicer import DetectStream, InvalidRequest, resolve_config
from services.vad.settings import VadSettings


class FakeBatcher:
    """Stands in for the inference thread: every window gets the probability the test chose."""

    def __init__(self, probability: float = 0.0) -> None:
        self.probability = probability
        self.windows_seen = 0

    async def run(self, job: InferenceJob) -> None:
        job.probabilities[:] = self.probability
        job.step = len(job.windows)
        self.windows_seen += len(job.windows)


def make_stream(batcher: FakeBatcher, clock_step: float = 0.0, **config: object) -> DetectStream:
    ticks = itertools.count()
    resolved = resolve_config(vad_pb2.DetectConfig(sample_rate=16000, **config), VadSettings())  # type: ignore[arg-type]
    return DetectStream(1, resolved, batcher, max_chunk_ms=1000, clock=lambda: next(ticks) * clock_step)  # type: ignore[arg-type]


def chunk(n_samples: int, **fields: int) -> audio_pb2.AudioChunk:
    return audio_pb2.AudioChunk(pcm16=float32_to_pcm16(np.zeros(n_samples, np.float32)), **fields)


def test_config_defaults_come_from_settings_and_bad_values_are_named() -> None:
    resolved = resolve_config(vad_pb2.DetectConfig(sample_rate=8000), VadSettings(min_silence_ms=250))
    assert resolved.min_silence_ms == 250 and resolved.threshold == pytest.approx(0.5)
    with pytest.raises(InvalidRequest, match="sample_rate must be 8000 or 16000, got 44100"):
        resolve_config(vad_pb2.DetectConfig(sample_rate=44100), VadSettings())
    with pytest.raises(InvalidRequest, match="threshold"):
        resolve_config(vad_pb2.DetectConfig(sample_rate=16000, threshold=1.0), VadSettings())


async def test_windows_span_chunk_boundaries() -> None:
    batcher = FakeBatcher()
    stream = make_stream(batcher)
    for size in (100, 300, 200, 1000):  # 1600 samples: three whole windows, 64 left over
        await stream.process(chunk(size))
    assert batcher.windows_seen == 3
    assert (stream.received, stream.processed) == (1600, 1536)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"sample_rate": 8000}, "differs from the configured 16000"),
        ({"offset_samples": 5}, "does not follow the previous chunk"),
    ],
)
async def test_chunk_metadata_must_match_the_stream(fields: dict[str, int], message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        await make_stream(FakeBatcher()).process(chunk(512, **fields))


async def test_speech_events_carry_offsets() -> None:
    batcher = FakeBatcher(probability=0.9)
    stream = make_stream(batcher, speech_pad_ms=0, min_silence_ms=0)
    responses = await stream.process(chunk(1024))
    assert [r.WhichOneof("event") for r in responses] == ["speech_started"]
    batcher.probability = 0.0
    responses = await stream.process(chunk(512))
    ended = responses[0].speech_ended
    assert (ended.start_offset_samples, ended.end_offset_samples) == (0, 1024)
    assert responses[0].processed_samples == 1536


async def test_a_stream_slower_than_real_time_is_reported(caplog: pytest.LogCaptureFixture) -> None:
    before = metrics.BEHIND_REALTIME._value.get()
    # Each 0.5 s chunk takes 0.6 s of (fake) clock: slower than real time.
    slow = make_stream(FakeBatcher(), clock_step=0.6)
    with caplog.at_level(logging.WARNING):
        for _ in range(2):
            await slow.process(chunk(8000))
    assert "falling behind real time" in caplog.text
    assert metrics.BEHIND_REALTIME._value.get() == before + 1


async def test_a_stream_faster_than_real_time_is_not_reported(caplog: pytest.LogCaptureFixture) -> None:
    fast = make_stream(FakeBatcher(), clock_step=0.1)
    with caplog.at_level(logging.WARNING):
        for _ in range(4):
            await fast.process(chunk(8000))
    assert "falling behind" not in caplog.text
