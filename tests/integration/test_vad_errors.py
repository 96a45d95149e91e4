"""Bad input gets a clear status; the service stays up and other streams are untouched."""

import asyncio
from collections.abc import AsyncIterator

import grpc
import numpy as np
from parley.v1 import audio_pb2, vad_pb2, vad_pb2_grpc

from tests.support import speech
from tests.support.calls import stream_until_error, unparseable_request_error
from tests.support.processes import start_service
from tests.support.vad_client import audio_requests, config_request, detect, segments

RATE = 16000


def audio(n_bytes: int) -> vad_pb2.DetectRequest:
    return vad_pb2.DetectRequest(audio=audio_pb2.AudioChunk(pcm16=b"\x01" * n_bytes))


BAD_STREAMS = {
    "unsupported-rate": (
        [config_request(44100)],
        grpc.StatusCode.INVALID_ARGUMENT,
        "sample_rate must be 8000 or 16000",
    ),
    "bad-threshold": ([config_request(RATE, threshold=1.5)], grpc.StatusCode.INVALID_ARGUMENT, "threshold"),
    "bad-turn-threshold": (
        [config_request(RATE, turn_detection=vad_pb2.TurnDetectionConfig(completion_threshold=0))],
        grpc.StatusCode.INVALID_ARGUMENT,
        "turn_detection.completion_threshold must be between 0 and 1",
    ),
    "turn-wait-over-limit": (
        [config_request(RATE, turn_detection=vad_pb2.TurnDetectionConfig(max_wait_ms=60_000))],
        grpc.StatusCode.INVALID_ARGUMENT,
        "turn_detection.max_wait_ms must be at most 10000",
    ),
    "odd-byte-length": ([config_request(), audio(1001)], grpc.StatusCode.INVALID_ARGUMENT, "even number of bytes"),
    "empty-chunk": ([config_request(), audio(0)], grpc.StatusCode.INVALID_ARGUMENT, "empty audio chunk"),
    "chunk-over-limit": ([config_request(), audio(6 * RATE * 2)], grpc.StatusCode.INVALID_ARGUMENT, "longer than"),
    "message-over-grpc-limit": ([config_request(), audio(5 * 1024 * 1024)], grpc.StatusCode.RESOURCE_EXHAUSTED, ""),
    "audio-before-config": ([audio(1024)], grpc.StatusCode.INVALID_ARGUMENT, "audio before config"),
    "config-twice": ([config_request(), config_request()], grpc.StatusCode.INVALID_ARGUMENT, "already configured"),
    "empty-request": ([vad_pb2.DetectRequest()], grpc.StatusCode.INVALID_ARGUMENT, "empty DetectRequest"),
    "wrong-chunk-rate": (
        [config_request(), vad_pb2.DetectRequest(audio=audio_pb2.AudioChunk(pcm16=b"\0\0" * 512, sample_rate=8000))],
        grpc.StatusCode.INVALID_ARGUMENT,
        "differs from the configured",
    ),
}


async def run_until_error(channel: grpc.aio.Channel, requests: list) -> grpc.aio.AioRpcError:
    return await stream_until_error(vad_pb2_grpc.VoiceActivityServiceStub(channel).Detect, requests)


async def test_bad_input_is_refused_clearly_while_a_good_stream_carries_on(vad_channel: grpc.aio.Channel) -> None:
    utterance = speech.trim(speech.speak("Stay on the line please.", RATE), RATE)
    good_audio, truth = speech.compose([0.5, utterance, 1.0, utterance, 0.5], RATE)
    chunks = audio_requests(good_audio, RATE, 32)
    halfway = asyncio.Event()
    bad_ones_done = asyncio.Event()

    async def good_requests() -> AsyncIterator[vad_pb2.DetectRequest]:
        yield config_request(min_silence_ms=300)
        for index, request in enumerate(chunks):
            if index == len(chunks) // 2:
                halfway.set()
                await bad_ones_done.wait()  # the bad streams run while this one is open mid-speech
            yield request

    good_call = vad_pb2_grpc.VoiceActivityServiceStub(vad_channel).Detect(good_requests())

    async def collect() -> list[vad_pb2.DetectResponse]:
        return [response async for response in good_call]

    good_task = asyncio.create_task(collect())
    await halfway.wait()
    for name, (requests, code, message) in BAD_STREAMS.items():
        error = await run_until_error(vad_channel, requests)
        assert error.code() == code, f"{name}: {error.code()} {error.details()}"
        assert message in (error.details() or ""), f"{name}: {error.details()}"
    bad_ones_done.set()
    found = segments(await good_task)
    assert len(found) == len(truth)
    for (start, end), true in zip(found, truth, strict=True):
        assert abs(start - true.start) < RATE * 0.15 and abs(end - true.end) < RATE * 0.15

    # And a new stream after all that still works.
    assert len(segments(await detect(vad_channel, good_audio, min_silence_ms=300))) == 2


async def test_streams_beyond_capacity_get_resource_exhausted() -> None:
    service = start_service("services.vad", "--max-streams", "2")
    try:
        async with grpc.aio.insecure_channel(service.grpc_address) as channel:
            stub = vad_pb2_grpc.VoiceActivityServiceStub(channel)
            release = asyncio.Event()

            async def held_open() -> AsyncIterator[vad_pb2.DetectRequest]:
                yield config_request()
                await release.wait()

            held = [stub.Detect(held_open()) for _ in range(2)]
            for call in held:
                assert (await call.read()).HasField("ready")
            error = await run_until_error(channel, [config_request()])
            assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "at capacity (2 streams)" in (error.details() or "")
            release.set()
            for call in held:
                assert await call.code() == grpc.StatusCode.OK
            # Capacity is given back when streams end.
            silence = np.zeros(RATE, np.float32)
            responses = await detect(channel, silence)
            assert responses[0].HasField("ready")
    finally:
        assert service.stop() == 0


async def test_bytes_that_are_no_request_get_invalid_argument(vad_channel: grpc.aio.Channel) -> None:
    error = await unparseable_request_error(vad_channel, "/parley.v1.VoiceActivityService/Detect")
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error
    assert "could not be parsed" in (error.details() or "")
    assert await detect(vad_channel, np.zeros(16000, np.float32), 16000), "the service goes on"
