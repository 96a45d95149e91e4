"""Bad input gets a clear status; the service stays up and other streams are untouched."""

import asyncio
import urllib.request
from collections.abc import AsyncIterator

import grpc
import pytest
from parley.v1 import speech_pb2, speech_pb2_grpc

from tests.support.calls import stream_until_error
from tests.support.processes import ServiceProcess, start_service
from tests.support.tts_client import (
    END_OF_TEXT,
    Synthesis,
    config_request,
    read_rest,
    synthesize,
    text_request,
    tokens,
)

MEGABYTE_OF_TEXT = ("All work and no play makes a dull voice. " * 25_600)[: 1024 * 1024]
SYNTHESIZE = "/parley.v1.SpeechSynthesisService/Synthesize"

BAD_STREAMS = {
    "unknown-voice": ([config_request(voice="nobody")], grpc.StatusCode.NOT_FOUND, "unknown voice 'nobody'"),
    "unsupported-rate": ([config_request(12345)], grpc.StatusCode.INVALID_ARGUMENT, "sample_rate must be one of"),
    "bad-speed": ([config_request(speed=5.0)], grpc.StatusCode.INVALID_ARGUMENT, "speed must be between 0.5 and 2"),
    "text-before-config": ([text_request("Hello.")], grpc.StatusCode.INVALID_ARGUMENT, "text before config"),
    "no-request": ([], grpc.StatusCode.INVALID_ARGUMENT, "no request before config"),
    "config-twice": ([config_request(), config_request()], grpc.StatusCode.INVALID_ARGUMENT, "already configured"),
    "empty-request": (
        [config_request(), speech_pb2.SynthesizeRequest()],
        grpc.StatusCode.INVALID_ARGUMENT,
        "empty SynthesizeRequest",
    ),
    "megabyte-in-one-request": (
        [config_request(), text_request(MEGABYTE_OF_TEXT)],
        grpc.StatusCode.INVALID_ARGUMENT,
        "longer than the limit of 65536",
    ),
    "message-over-grpc-limit": (
        [config_request(), text_request("x" * (5 * 1024 * 1024))],
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "",
    ),
}


async def run_until_error(channel: grpc.aio.Channel, requests: list) -> grpc.aio.AioRpcError:
    return await stream_until_error(speech_pb2_grpc.SpeechSynthesisServiceStub(channel).Synthesize, requests)


async def invalid_utf8_error(channel: grpc.aio.Channel) -> grpc.aio.AioRpcError:
    """Send raw bytes: a config, then a text field whose bytes are not UTF-8."""
    raw = channel.stream_stream(SYNTHESIZE, request_serializer=lambda b: b, response_deserializer=lambda b: b)
    bad_text = b"\x12\x05ab\xff\xfec"  # field 2 (text), length 5
    call = raw(iter([config_request().SerializeToString(), bad_text]))
    with pytest.raises(grpc.aio.AioRpcError) as error:
        async for _ in call:
            pass
    return error.value


async def test_bad_input_is_refused_clearly_while_a_good_stream_carries_on(tts_channel: grpc.aio.Channel) -> None:
    text = "This stream keeps going while others fail. It speaks its second sentence after them."
    words = tokens(text)
    halfway, bad_ones_done = asyncio.Event(), asyncio.Event()

    async def good_requests() -> AsyncIterator[speech_pb2.SynthesizeRequest]:
        yield config_request(16000)
        for index, word in enumerate(words):
            if index == len(words) // 2:
                halfway.set()
                await bad_ones_done.wait()  # the bad streams run while this one is mid-text
            yield text_request(word)
        yield END_OF_TEXT

    good_call = speech_pb2_grpc.SpeechSynthesisServiceStub(tts_channel).Synthesize(good_requests())
    good = asyncio.create_task(_collect(good_call))
    await halfway.wait()
    for name, (requests, code, message) in BAD_STREAMS.items():
        error = await run_until_error(tts_channel, requests)
        assert error.code() == code, f"{name}: {error.code()} {error.details()}"
        assert message in (error.details() or ""), f"{name}: {error.details()}"
    error = await invalid_utf8_error(tts_channel)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "UTF-8" in (error.details() or ""), error.details()
    bad_ones_done.set()
    synthesis = await good
    assert " ".join(segment.text for segment in synthesis.segments) == text
    assert synthesis.done.total_samples == len(synthesis.audio) > 16000
    # And a new stream after all that still works.
    assert (await synthesize(tts_channel, "Still here.")).done.total_samples > 0


async def _collect(call: grpc.aio.StreamStreamCall) -> Synthesis:
    return Synthesis([response async for response in call])


async def test_control_characters_are_dropped_and_the_rest_is_spoken(tts_channel: grpc.aio.Channel) -> None:
    synthesis = await synthesize(tts_channel, ["\x00\x01Hello\x1b[31m there\x07,", " \u202egood\u200b day.\x7f"])
    assert [segment.text for segment in synthesis.segments] == ["Hello there,", "good day."]
    assert len(synthesis.audio) > 16000 // 2


def metrics_of(service: ServiceProcess) -> dict[str, float]:
    with urllib.request.urlopen(service.metrics_url, timeout=10) as response:
        lines = response.read().decode().splitlines()
    return {line.split()[0]: float(line.split()[1]) for line in lines if line.startswith("parley_tts_")}


async def test_a_megabyte_streamed_in_pieces_is_spoken_in_pieces_with_bounded_buffering(
    tts_service: ServiceProcess, tts_channel: grpc.aio.Channel
) -> None:
    piece = 4096
    before = metrics_of(tts_service)
    call = speech_pb2_grpc.SpeechSynthesisServiceStub(tts_channel).Synthesize()

    async def send() -> None:
        await call.write(config_request(16000))
        for start in range(0, len(MEGABYTE_OF_TEXT), piece):
            await call.write(text_request(MEGABYTE_OF_TEXT[start : start + piece]))
        await call.done_writing()

    sender = asyncio.create_task(send())
    segments = 0
    async for response in call:
        if not response.HasField("segment"):
            continue
        segments += 1
        # The service reads text only as fast as it speaks it: what it has read and not yet
        # spoken is bounded by the backlog (2000 characters by default, plus the piece being
        # queued) and one request it is cutting up, however much the client pushes. (The rest
        # waits in gRPC's flow-control window, which is bounded too.)
        now = await asyncio.to_thread(metrics_of, tts_service)
        read = now["parley_tts_characters_received_total"] - before["parley_tts_characters_received_total"]
        spoken = now["parley_tts_characters_total"] - before["parley_tts_characters_total"]
        assert read - spoken <= 2000 + 300 + piece + 300, (read, spoken)
        assert now["parley_tts_backlog_characters"] <= 2000 + 300
        if segments == 8:
            break
    assert read < len(MEGABYTE_OF_TEXT) // 10
    call.cancel()
    sender.cancel()
    await asyncio.gather(sender, return_exceptions=True)  # it may have handed everything to gRPC already
    assert (await synthesize(tts_channel, "Service is fine.")).done.total_samples > 0


async def test_streams_beyond_capacity_get_resource_exhausted() -> None:
    service = start_service("services.tts", "--max-streams", "2")
    try:
        async with grpc.aio.insecure_channel(service.grpc_address) as channel:
            stub = speech_pb2_grpc.SpeechSynthesisServiceStub(channel)
            release = asyncio.Event()

            async def held_open() -> AsyncIterator[speech_pb2.SynthesizeRequest]:
                yield config_request()
                yield text_request("Holding on,")
                await release.wait()
                yield END_OF_TEXT

            held = [stub.Synthesize(held_open()) for _ in range(2)]
            for call in held:
                assert (await call.read()).HasField("audio")
            error = await run_until_error(channel, [config_request()])
            assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "at capacity (2 streams)" in (error.details() or "")
            release.set()
            for call in held:
                assert (await read_rest(call))[-1].HasField("done")
                assert await call.code() == grpc.StatusCode.OK
            # Capacity is given back when streams end.
            assert (await synthesize(channel, "Room again.")).done.total_samples > 0
    finally:
        assert service.stop() == 0
