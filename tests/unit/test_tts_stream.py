"""SynthesisStream without a model: offsets, resampling, chunking, backpressure, code, errors, cancel."""

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator

import numpy as np
import pytest
from parley.v1 import speech_pb2

from services.tts.backends import Cancellation, SpeechVoice, VoiceInfo
from services.tts.normalisation import CODE_BLOCK_PHRASE
from services.tts.scheduler import SynthesisScheduler
from services.tts.segmentation import SegmentLimits
from services.tts.stream import InvalidRequest, StreamConfig, StreamLimits, SynthesisStream

SAMPLES_PER_CHAR = 100


class FakeVoice(SpeechVoice):
    """A tone whose length is proportional to the text; can be held mid-synthesis by the test."""

    def __init__(self, native_rate: int = 16000) -> None:
        self.info = VoiceInfo("fake", "en-US", native_rate, "fake")
        self.spoken: list[str] = []
        self.hold = threading.Event()
        self.hold.set()
        self.entered = threading.Event()
        self.cancelled = threading.Event()

    def synthesize(self, text: str, speed: float, cancellation: Cancellation) -> Iterator[np.ndarray]:
        self.spoken.append(text)
        self.entered.set()
        with cancellation.on_cancel(self.cancelled.set):
            self.hold.wait(10)
        if cancellation.cancelled:
            return
        n = int(len(text) * SAMPLES_PER_CHAR / speed)
        yield (0.5 * np.sin(np.arange(n) * 0.05)).astype(np.float32)


@pytest.fixture
async def scheduler() -> AsyncIterator[SynthesisScheduler]:
    scheduler = SynthesisScheduler(workers=2)
    scheduler.start()
    yield scheduler
    scheduler.close()


def make_stream(
    scheduler: SynthesisScheduler,
    voice: FakeVoice,
    rate: int = 16000,
    chunk_ms: int = 200,
    backlog: int = 2000,
    message_chars: int = 1000,
) -> SynthesisStream:
    limits = StreamLimits(SegmentLimits(), message_chars, backlog, chunk_ms)
    return SynthesisStream(1, StreamConfig(voice, rate, 1.0), limits, scheduler)


def text(value: str) -> speech_pb2.SynthesizeRequest:
    return speech_pb2.SynthesizeRequest(text=value)


END = speech_pb2.SynthesizeRequest(end_of_text=speech_pb2.EndOfText())


async def requests_of(*requests: speech_pb2.SynthesizeRequest) -> AsyncIterator[speech_pb2.SynthesizeRequest]:
    for request in requests:
        yield request


async def run(stream: SynthesisStream, requests: AsyncIterator[speech_pb2.SynthesizeRequest]) -> list:
    reader = asyncio.create_task(stream.read_text(requests))
    try:
        return [response async for response in stream.responses()]
    finally:
        reader.cancel()


def kinds(responses: list[speech_pb2.SynthesizeResponse]) -> list[str]:
    return [str(r.WhichOneof("event")) for r in responses]


async def test_audio_segments_and_done_carry_consistent_offsets(scheduler: SynthesisScheduler) -> None:
    voice = FakeVoice()
    stream = make_stream(scheduler, voice, chunk_ms=100)
    responses = await run(stream, requests_of(text("Hello there, "), text("how are you? Fine."), END))
    segments = [r.segment for r in responses if r.HasField("segment")]
    assert [s.text for s in segments] == ["Hello there,", "how are you?", "Fine."]
    position = 0
    for response in responses:
        if response.HasField("audio"):
            assert response.audio.offset_samples == position
            assert response.audio.sample_rate == 16000
            assert len(response.audio.pcm16) <= 2 * 1600
            position += len(response.audio.pcm16) // 2
        elif response.HasField("segment"):
            assert response.segment.end_offset_samples == position
    assert [(s.start_offset_samples, s.end_offset_samples) for s in segments] == [
        (0, 1200),
        (1200, 2400),
        (2400, 2900),
    ]
    done = responses[-1].done
    assert kinds(responses)[-1] == "done" and done.total_samples == 2900
    assert set(done.timings.durations_ms) == {"synthesis", "audio", "first_audio", "first_segment_to_audio"}
    assert done.timings.durations_ms["audio"] == pytest.approx(2900 / 16)
    # The voice was given the normalised text, the client sees the text as sent.
    assert voice.spoken == ["Hello there,", "how are you?", "Fine."]


async def test_audio_is_resampled_to_the_requested_rate(scheduler: SynthesisScheduler) -> None:
    stream = make_stream(scheduler, FakeVoice(native_rate=22050), rate=48000)
    responses = await run(stream, requests_of(text("Twenty characters ok."), END))
    audio = b"".join(r.audio.pcm16 for r in responses if r.HasField("audio"))
    assert len(audio) // 2 == pytest.approx(21 * SAMPLES_PER_CHAR * 48000 / 22050, abs=2)
    assert {r.audio.sample_rate for r in responses if r.HasField("audio")} == {48000}


async def test_text_is_normalised_and_control_characters_dropped(scheduler: SynthesisScheduler) -> None:
    voice = FakeVoice()
    responses = await run(make_stream(scheduler, voice), requests_of(text("It is 3 + 4 = 7\x00\x1b[1m."), END))
    assert voice.spoken == ["It is three plus four equals seven."]
    assert [r.segment.text for r in responses if r.HasField("segment")] == ["It is 3 + 4 = 7."]


async def test_code_blocks_are_announced_once(scheduler: SynthesisScheduler) -> None:
    voice = FakeVoice()
    code = "\n".join(f"x{i} = {i}" for i in range(60))
    responses = await run(make_stream(scheduler, voice), requests_of(text(f"Look:\n```\n{code}\n```\nDone."), END))
    assert voice.spoken == ["Look:", CODE_BLOCK_PHRASE, "Done."]
    silent = [r.segment for r in responses if r.HasField("segment") and not r.segment.text.startswith(("Look", "Done"))]
    assert len(silent) >= 2 and silent[0].end_offset_samples > silent[0].start_offset_samples
    assert all(s.start_offset_samples == s.end_offset_samples for s in silent[1:])


async def test_a_full_backlog_stops_reading_until_synthesis_catches_up(scheduler: SynthesisScheduler) -> None:
    voice = FakeVoice()
    voice.hold.clear()  # synthesis is stuck on the first piece
    stream = make_stream(scheduler, voice, backlog=100)
    pulled = 0

    async def endless() -> AsyncIterator[speech_pb2.SynthesizeRequest]:
        nonlocal pulled
        for _ in range(10_000):
            pulled += 1
            yield text("This is one more sentence of twenty-nine. ")
        yield END

    reader = asyncio.create_task(stream.read_text(endless()))
    responses = stream.responses()
    first = asyncio.create_task(anext(responses))
    assert await asyncio.to_thread(voice.entered.wait, 10)
    for _ in range(100):  # let the reader run as far as it can
        await asyncio.sleep(0)
    assert stream._backlog.chars >= 100
    pulled_when_full = pulled
    for _ in range(100):  # it pulls nothing more, however long the event loop runs
        await asyncio.sleep(0)
    assert pulled == pulled_when_full < 10
    voice.hold.set()
    assert (await first).HasField("audio")
    reader.cancel()
    await responses.aclose()


async def test_an_error_overtakes_queued_text(scheduler: SynthesisScheduler) -> None:
    voice = FakeVoice()
    voice.hold.clear()
    stream = make_stream(scheduler, voice)
    synthesising = asyncio.Event()

    async def requests() -> AsyncIterator[speech_pb2.SynthesizeRequest]:
        yield text("One. Two. Three. Four. ")
        await synthesising.wait()
        yield speech_pb2.SynthesizeRequest(config=speech_pb2.SynthesisConfig())

    reader = asyncio.create_task(stream.read_text(requests()))
    responses = stream.responses()
    first = asyncio.create_task(anext(responses))
    assert await asyncio.to_thread(voice.entered.wait, 10)
    synthesising.set()
    await reader
    voice.hold.set()
    seen = [await first]
    with pytest.raises(InvalidRequest, match="already configured"):
        seen.extend([response async for response in responses])
    assert voice.spoken == ["One."]  # "Two." and the rest were never synthesised


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (text("x" * 1001), "longer than the limit of 1000"),
        (speech_pb2.SynthesizeRequest(), "empty SynthesizeRequest"),
    ],
)
async def test_bad_requests_are_named(scheduler: SynthesisScheduler, request_, message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        await run(make_stream(scheduler, FakeVoice()), requests_of(text("Fine. "), request_, END))


async def test_cancelling_the_call_cancels_synthesis_in_progress(scheduler: SynthesisScheduler) -> None:
    voice = FakeVoice()
    voice.hold.clear()
    stream = make_stream(scheduler, voice)
    consumer = asyncio.create_task(run(stream, requests_of(text("A long first sentence. And more. "), END)))
    assert await asyncio.to_thread(voice.entered.wait, 10)
    consumer.cancel()
    assert await asyncio.to_thread(voice.cancelled.wait, 10)
    with pytest.raises(asyncio.CancelledError):
        await consumer
    assert voice.spoken == ["A long first sentence."]


class PaddedVoice(FakeVoice):
    """The fake tone after 30 ms of digital silence, as Piper starts every synthesis."""

    def synthesize(self, text: str, speed: float, cancellation: Cancellation) -> Iterator[np.ndarray]:
        for tone in super().synthesize(text, speed, cancellation):
            yield np.concatenate([np.full(480, 1e-5, np.float32), tone])


async def test_the_first_piece_starts_where_the_voice_does(scheduler: SynthesisScheduler) -> None:
    responses = await run(make_stream(scheduler, PaddedVoice()), requests_of(text("Hello there, how are you?"), END))
    audio = np.frombuffer(b"".join(r.audio.pcm16 for r in responses if r.HasField("audio")), "<i2")
    segments = [r.segment for r in responses if r.HasField("segment")]
    first_end = segments[0].end_offset_samples
    # The first piece: 5 ms (80 samples) of its 30 ms of silence left before the tone's onset
    # (its second sample: a sine starts at 0).
    assert first_end == 80 + len("Hello there,") * SAMPLES_PER_CHAR - 1
    assert not audio[:80].any() and audio[80] != 0
    # A later piece keeps its silence: the pause between sentences is the voice's own.
    assert segments[1].end_offset_samples - segments[1].start_offset_samples == 480 + len("how are you?") * 100
    assert responses[-1].done.total_samples == len(audio)
