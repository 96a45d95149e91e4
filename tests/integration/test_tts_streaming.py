"""Streaming: audio comes while text is still arriving; streams are independent; cancelling stops
the work."""

import asyncio
import time
import urllib.request
from collections.abc import AsyncIterator

import grpc
import numpy as np
import pytest
from parley.v1 import speech_pb2, speech_pb2_grpc

from tests.support.processes import ServiceProcess
from tests.support.tts_client import END_OF_TEXT, Synthesis, config_request, synthesize, text_request, tokens

PARAGRAPH = (
    "Well, that depends on what you need. The train is faster and usually more comfortable, while the bus "
    "is cheaper and leaves more often. If you travel on a weekday morning, book a seat in advance, because "
    "the commuter trains fill up quickly. On weekends both are quiet, so either will do. In the end it comes "
    "down to price and time, and only you can weigh those two against each other."
)
TOKEN_DELAY_S = 0.005  # a fast language model's pace


async def test_first_audio_arrives_while_the_text_is_still_streaming(tts_channel: grpc.aio.Channel) -> None:
    words = tokens(PARAGRAPH)
    first_audio = asyncio.Event()
    sent = 0

    async def requests() -> AsyncIterator[speech_pb2.SynthesizeRequest]:
        nonlocal sent
        yield config_request(24000)
        for index, token in enumerate(words):
            if index == len(words) - 1:
                # The last token waits for the first audio: if the service waited for the
                # whole text, this times out and the test fails.
                await asyncio.wait_for(first_audio.wait(), timeout=60)
            yield text_request(token)
            sent += 1
            await asyncio.sleep(TOKEN_DELAY_S)
        yield END_OF_TEXT

    call = speech_pb2_grpc.SpeechSynthesisServiceStub(tts_channel).Synthesize(requests())
    responses, sent_at_first_audio = [], None
    async for response in call:
        if response.HasField("audio") and not first_audio.is_set():
            sent_at_first_audio = sent
            first_audio.set()
        responses.append(response)
    synthesis = Synthesis(responses)
    assert sent_at_first_audio is not None and sent_at_first_audio < len(words)
    # The first piece is the short opening clause, and the whole paragraph was spoken in order.
    assert synthesis.segments[0].text == "Well,"
    assert " ".join(segment.text for segment in synthesis.segments) == PARAGRAPH
    seconds = len(synthesis.audio) / 24000
    assert len(words) / 4 <= seconds <= len(words) / 2
    assert np.sqrt(np.mean(synthesis.audio**2)) > 0.01


async def test_concurrent_streams_are_independent(tts_channel: grpc.aio.Channel) -> None:
    jobs = [
        ("First stream: one, two, three.", 16000),
        ("Second stream speaks about the weather today. It will rain.", 48000),
        ("Third stream, with yet another sentence to say.", 22050),
        ("Fourth! Short.", 24000),
    ]
    results = await asyncio.gather(*(synthesize(tts_channel, tokens(text), sample_rate=rate) for text, rate in jobs))
    for (text, rate), synthesis in zip(jobs, results, strict=True):
        assert " ".join(segment.text for segment in synthesis.segments) == text
        assert {chunk.sample_rate for chunk in synthesis.chunks} == {rate}
        assert synthesis.done.total_samples == len(synthesis.audio) > rate // 2


def metric(service: ServiceProcess, name: str) -> float:
    with urllib.request.urlopen(service.metrics_url, timeout=10) as response:
        for line in response.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    return 0.0


async def wait_for_metric(service: ServiceProcess, name: str, value: float) -> None:
    """Poll a metric until it reaches ``value`` (the stream's end is noticed by the server on its own time)."""
    deadline = time.monotonic() + 30
    while (current := await asyncio.to_thread(metric, service, name)) != value:
        assert time.monotonic() < deadline, f"{name} is {current}, expected {value}"
        await asyncio.sleep(0.05)  # polling a metric, with a deadline


async def test_cancelling_a_stream_stops_its_synthesis(
    tts_service: ServiceProcess, tts_channel: grpc.aio.Channel
) -> None:
    cancelled_before = metric(tts_service, 'parley_tts_stream_errors_total{code="CANCELLED"}')
    long_text = " ".join(f"This is sentence number {i} of a very long answer." for i in range(200))
    call = speech_pb2_grpc.SpeechSynthesisServiceStub(tts_channel).Synthesize(
        iter([config_request(16000), text_request(long_text), END_OF_TEXT])
    )
    response = await call.read()
    assert response.HasField("audio")
    call.cancel()
    await wait_for_metric(tts_service, "parley_tts_streams_active", 0)
    await wait_for_metric(tts_service, 'parley_tts_stream_errors_total{code="CANCELLED"}', cancelled_before + 1)
    # Nothing of the cancelled stream is synthesised any more: a new stream's pieces are all
    # that the counter sees from now on.
    segments_before = metric(tts_service, "parley_tts_segments_total")
    synthesis = await synthesize(tts_channel, "One more. And done.")
    assert len(synthesis.segments) == 2
    assert metric(tts_service, "parley_tts_segments_total") == segments_before + 2


async def test_a_stream_may_ask_for_a_shorter_first_piece(tts_channel: grpc.aio.Channel) -> None:
    text = "The capital of France is Paris, a city on the Seine."
    default = await synthesize(tts_channel, [text])
    short = await synthesize(tts_channel, [text], first_segment_max_chars=16)
    assert default.segments[0].text == "The capital of France is Paris,"
    assert short.segments[0].text == "The capital of"
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await synthesize(tts_channel, [text], first_segment_max_chars=2)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "first_segment_max_chars" in (refused.value.details() or "")
