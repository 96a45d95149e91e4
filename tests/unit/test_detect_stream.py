"""DetectStream without a model: chunk validation, windowing across chunks, real-time warnings."""

import itertools
import logging

import grpc
import numpy as np
import pytest
from parley.v1 import audio_pb2, vad_pb2

from services.common.audio import float32_to_pcm16
from services.vad import metrics
from services.vad.batcher import InferenceJob
from services.vad.servicer import DetectStream, InvalidRequest, UnsupportedRequest, resolve_config
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


class FakeTurnScorer:
    """Stands in for the turn model: answers the probability the test chose, keeps what it was given."""

    def __init__(self, probability: float) -> None:
        self.probability = probability
        self.scored: list[np.ndarray] = []

    async def score(self, audio: np.ndarray, sample_rate: int) -> tuple[float, float]:
        self.scored.append(audio.copy())
        return self.probability, 0.04


def make_stream(
    batcher: FakeBatcher, clock_step: float = 0.0, turn_scorer: FakeTurnScorer | None = None, **config: object
) -> DetectStream:
    ticks = itertools.count()
    resolved = resolve_config(vad_pb2.DetectConfig(sample_rate=16000, **config), VadSettings())  # type: ignore[arg-type]
    return DetectStream(
        1,
        resolved,
        batcher,  # type: ignore[arg-type]
        max_chunk_ms=1000,
        clock=lambda: next(ticks) * clock_step,
        turn_scorer=turn_scorer,  # type: ignore[arg-type]
    )


async def process(stream: DetectStream, audio: audio_pb2.AudioChunk) -> list[vad_pb2.DetectResponse]:
    """Every response a chunk produces, in order."""
    return [response async for response in stream.analyse(audio)]


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
        await process(stream, chunk(size))
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
        await process(make_stream(FakeBatcher()), chunk(512, **fields))


async def test_speech_events_carry_offsets() -> None:
    batcher = FakeBatcher(probability=0.9)
    stream = make_stream(batcher, speech_pad_ms=0, min_silence_ms=0)
    responses = await process(stream, chunk(1024))
    assert [r.WhichOneof("event") for r in responses] == ["speech_started"]
    batcher.probability = 0.0
    responses = await process(stream, chunk(512))
    ended = responses[0].speech_ended
    assert (ended.start_offset_samples, ended.end_offset_samples) == (0, 1024)
    assert responses[0].processed_samples == 1536


async def test_a_stream_slower_than_real_time_is_reported(caplog: pytest.LogCaptureFixture) -> None:
    before = metrics.BEHIND_REALTIME._value.get()
    # Each 0.5 s chunk takes 0.6 s of (fake) clock: slower than real time.
    slow = make_stream(FakeBatcher(), clock_step=0.6)
    with caplog.at_level(logging.WARNING):
        for _ in range(2):
            await process(slow, chunk(8000))
    assert "falling behind real time" in caplog.text
    assert metrics.BEHIND_REALTIME._value.get() == before + 1


async def test_a_stream_faster_than_real_time_is_not_reported(caplog: pytest.LogCaptureFixture) -> None:
    fast = make_stream(FakeBatcher(), clock_step=0.1)
    with caplog.at_level(logging.WARNING):
        for _ in range(4):
            await process(fast, chunk(8000))
    assert "falling behind" not in caplog.text


def test_turn_detection_defaults_come_from_settings_and_bad_values_are_named() -> None:
    settings = VadSettings(turn_completion_threshold=0.6, turn_max_wait_ms=1500)
    turn = vad_pb2.TurnDetectionConfig()
    resolved = resolve_config(vad_pb2.DetectConfig(sample_rate=16000, turn_detection=turn), settings)
    assert resolved.turn_detection.completion_threshold == pytest.approx(0.6)
    assert resolved.turn_detection.max_wait_ms == 1500
    assert not resolve_config(vad_pb2.DetectConfig(sample_rate=16000), settings).HasField("turn_detection")
    for bad, message in (({"completion_threshold": 1.0}, "completion_threshold"), ({"max_wait_ms": 20000}, "max_wait")):
        config = vad_pb2.DetectConfig(sample_rate=16000, turn_detection=vad_pb2.TurnDetectionConfig(**bad))  # type: ignore[arg-type]
        with pytest.raises(InvalidRequest, match=message):
            resolve_config(config, settings)


def test_turn_detection_without_the_turn_model_is_refused_as_a_precondition() -> None:
    with pytest.raises(UnsupportedRequest, match="without the turn model") as raised:
        make_stream(FakeBatcher(), turn_detection=vad_pb2.TurnDetectionConfig())
    assert raised.value.code is grpc.StatusCode.FAILED_PRECONDITION


async def feed(stream: DetectStream, batcher: FakeBatcher, probability: float, samples: int) -> list[str]:
    """Send ``samples`` whose windows the fake model scores ``probability``; the events' kinds."""
    batcher.probability = probability
    kinds = []
    for start in range(0, samples, 1600):
        kinds += [r.WhichOneof("event") for r in await process(stream, chunk(min(1600, samples - start)))]
    return kinds


async def test_a_pause_judged_finished_ends_the_turn_with_the_turns_audio_scored() -> None:
    batcher, scorer = FakeBatcher(), FakeTurnScorer(0.9)
    stream = make_stream(batcher, turn_scorer=scorer, min_silence_ms=200, speech_pad_ms=0, turn_detection={})
    assert await feed(stream, batcher, 0.0, 16384) == []  # whole windows of 512 samples
    assert await feed(stream, batcher, 0.9, 32768) == ["speech_started"]
    responses = []
    batcher.probability = 0.0
    for _ in range(5):
        responses += await process(stream, chunk(1600))
    assert [r.WhichOneof("event") for r in responses] == ["speech_ended", "turn_scored", "turn_ended"]
    scored, ended = responses[1].turn_scored, responses[2].turn_ended
    # The scored audio runs from the turn's start to the pause: 2 s of speech, then the 200 ms pause.
    assert len(scorer.scored) == 1 and abs(len(scorer.scored[0]) - 32768 - 3200) <= 512
    assert scored.complete and scored.probability == pytest.approx(0.9)
    assert scored.audio_ms == len(scorer.scored[0]) * 1000 // 16000
    assert ended.reason == vad_pb2.TURN_END_REASON_COMPLETE and ended.scorings == 1
    assert ended.start_offset_samples == 16384 and ended.end_offset_samples == 16384 + 32768


async def test_a_pause_goes_out_before_the_turn_model_scores_it() -> None:
    """The client acts on a pause (the edge begins the held answer's recognition) while the turn
    model works: the stream yields SpeechEnded before it asks for the score."""
    batcher, scorer = FakeBatcher(), FakeTurnScorer(0.9)
    stream = make_stream(batcher, turn_scorer=scorer, min_silence_ms=200, speech_pad_ms=0, turn_detection={})
    await feed(stream, batcher, 0.9, 16000)
    batcher.probability = 0.0
    scores_when_yielded = {}
    for _ in range(3):
        async for response in stream.analyse(chunk(1600)):
            scores_when_yielded[response.WhichOneof("event")] = len(scorer.scored)
    assert scores_when_yielded == {"speech_ended": 0, "turn_scored": 1, "turn_ended": 1}


async def test_a_pause_judged_unfinished_waits_for_more_speech_then_for_the_longest_wait() -> None:
    batcher, scorer = FakeBatcher(), FakeTurnScorer(0.2)
    turn = vad_pb2.TurnDetectionConfig(max_wait_ms=1000)
    stream = make_stream(batcher, turn_scorer=scorer, min_silence_ms=200, speech_pad_ms=0, turn_detection=turn)
    assert await feed(stream, batcher, 0.9, 16000) == ["speech_started"]
    assert await feed(stream, batcher, 0.0, 8000) == ["speech_ended", "turn_scored"]  # unfinished: no turn end
    assert await feed(stream, batcher, 0.9, 16000) == ["speech_started"]  # the same turn goes on
    assert await feed(stream, batcher, 0.0, 14400) == ["speech_ended", "turn_scored"]
    assert len(scorer.scored[1]) > 16000 * 2.5  # the second pause is scored with the whole turn
    responses = []
    batcher.probability = 0.0
    for _ in range(5):
        responses += await process(stream, chunk(1600))
    assert [r.WhichOneof("event") for r in responses] == ["turn_ended"]
    ended = responses[0]
    assert ended.turn_ended.reason == vad_pb2.TURN_END_REASON_MAX_WAIT and ended.turn_ended.scorings == 2
    assert ended.turn_ended.start_offset_samples == 0
    assert ended.processed_samples - ended.turn_ended.end_offset_samples >= 16000  # the 1 s wait


async def test_only_the_last_8_seconds_of_a_long_turn_are_scored() -> None:
    batcher, scorer = FakeBatcher(), FakeTurnScorer(0.9)
    stream = make_stream(batcher, turn_scorer=scorer, min_silence_ms=100, turn_detection={})
    await feed(stream, batcher, 0.9, 16000 * 11)
    assert await feed(stream, batcher, 0.0, 3200) == ["speech_ended", "turn_scored", "turn_ended"]
    assert len(scorer.scored[0]) == 16000 * 8


async def test_closing_the_stream_mid_turn_ends_the_turn() -> None:
    batcher, scorer = FakeBatcher(), FakeTurnScorer(0.9)
    stream = make_stream(batcher, turn_scorer=scorer, turn_detection={})
    await feed(stream, batcher, 0.9, 8000)
    responses = stream.finish()
    assert [r.WhichOneof("event") for r in responses] == ["speech_ended", "turn_ended"]
    ended = responses[1].turn_ended
    assert ended.reason == vad_pb2.TURN_END_REASON_STREAM_END and ended.scorings == 0
    assert ended.end_offset_samples == 8000
