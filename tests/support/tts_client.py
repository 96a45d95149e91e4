"""A plain client of parley.v1.SpeechSynthesisService for tests and benchmarks."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import numpy as np
from parley.v1 import speech_pb2, speech_pb2_grpc

from services.common.audio import pcm16_to_float32

END_OF_TEXT = speech_pb2.SynthesizeRequest(end_of_text=speech_pb2.EndOfText())


def config_request(
    sample_rate: int = 16000, voice: str = "", speed: float | None = None, first_segment_max_chars: int | None = None
) -> speech_pb2.SynthesizeRequest:
    config = speech_pb2.SynthesisConfig(voice=voice, sample_rate=sample_rate)
    if speed is not None:
        config.speed = speed
    if first_segment_max_chars is not None:
        config.first_segment_max_chars = first_segment_max_chars
    return speech_pb2.SynthesizeRequest(config=config)


def text_request(text: str) -> speech_pb2.SynthesizeRequest:
    return speech_pb2.SynthesizeRequest(text=text)


def tokens(text: str) -> list[str]:
    """Split text the way a language model streams it: words, each with its leading space."""
    words = text.split(" ")
    return [words[0]] + [" " + word for word in words[1:]]


@dataclass
class Synthesis:
    """Everything one Synthesize call returned."""

    responses: list[speech_pb2.SynthesizeResponse]

    @property
    def chunks(self) -> list[speech_pb2.AudioChunk]:
        return [r.audio for r in self.responses if r.HasField("audio")]

    @property
    def audio(self) -> np.ndarray:
        return pcm16_to_float32(b"".join(chunk.pcm16 for chunk in self.chunks))

    @property
    def segments(self) -> list[speech_pb2.SpokenSegment]:
        return [r.segment for r in self.responses if r.HasField("segment")]

    @property
    def done(self) -> speech_pb2.SynthesisDone:
        assert self.responses and self.responses[-1].HasField("done"), "the stream did not end with SynthesisDone"
        return self.responses[-1].done


async def read_rest(call: grpc.aio.StreamStreamCall) -> list[speech_pb2.SynthesizeResponse]:
    """Read a call's remaining responses (its status arrives only after them); errors are left to
    ``call.code()``."""
    responses = []
    try:
        while (response := await call.read()) is not grpc.aio.EOF:
            responses.append(response)
    except grpc.aio.AioRpcError:
        pass
    return responses


async def synthesize(
    channel: grpc.aio.Channel,
    text: str | list[str],
    sample_rate: int = 16000,
    voice: str = "",
    speed: float | None = None,
    first_segment_max_chars: int | None = None,
) -> Synthesis:
    """Send the config, the text (one request per item of a list), EndOfText; collect every response."""

    async def requests() -> AsyncIterator[speech_pb2.SynthesizeRequest]:
        yield config_request(sample_rate, voice, speed, first_segment_max_chars)
        for piece in [text] if isinstance(text, str) else text:
            yield text_request(piece)
        yield END_OF_TEXT

    call = speech_pb2_grpc.SpeechSynthesisServiceStub(channel).Synthesize(requests())
    return Synthesis([response async for response in call])
