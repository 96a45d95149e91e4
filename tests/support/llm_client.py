"""A plain client of parley.v1.ConversationService for tests and benchmarks."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from dataclasses import dataclass, field

import grpc
import numpy as np
from parley.v1 import audio_pb2, conversation_pb2, conversation_pb2_grpc

from services.common.audio import float32_to_pcm16


@dataclass
class TurnResult:
    accepted: conversation_pb2.TurnAccepted | None = None
    partials: list[str] = field(default_factory=list)
    transcript: str | None = None
    deltas: list[str] = field(default_factory=list)
    call_deltas: list[conversation_pb2.FunctionCallDelta] = field(default_factory=list)
    calls: list[conversation_pb2.FunctionCall] = field(default_factory=list)
    done: conversation_pb2.TurnDone | None = None
    end_of_turn: conversation_pb2.EndOfTurnScore | None = None
    deltas_before_score: int = 0  # text deltas that came before the end-of-turn score

    @property
    def reply(self) -> str:
        return "".join(self.deltas)


def header(session_id: str, **fields: object) -> conversation_pb2.RespondRequest:
    fields.setdefault("turn_id", uuid.uuid4().hex[:8])
    return conversation_pb2.RespondRequest(header=conversation_pb2.TurnHeader(session_id=session_id, **fields))  # type: ignore[arg-type]


def text(value: str) -> conversation_pb2.RespondRequest:
    return conversation_pb2.RespondRequest(text=conversation_pb2.TextInput(text=value))


def audio_chunks(samples: np.ndarray, rate: int = 16000, chunk_ms: int = 100) -> list[conversation_pb2.RespondRequest]:
    pcm = float32_to_pcm16(samples)
    step = 2 * rate * chunk_ms // 1000
    return [
        conversation_pb2.RespondRequest(audio=audio_pb2.AudioChunk(pcm16=pcm[i : i + step], sample_rate=rate))
        for i in range(0, len(pcm), step)
    ]


def image(jpeg: bytes) -> conversation_pb2.RespondRequest:
    return conversation_pb2.RespondRequest(image=audio_pb2.ImageFrame(jpeg=jpeg))


END = conversation_pb2.RespondRequest(end_of_input=conversation_pb2.EndOfInput())


def collect(result: TurnResult, response: conversation_pb2.RespondResponse) -> None:
    kind = response.WhichOneof("event")
    if kind == "accepted":
        result.accepted = response.accepted
    elif kind == "user_transcript":
        if response.user_transcript.is_final:
            result.transcript = response.user_transcript.text
        else:
            result.partials.append(response.user_transcript.text)
    elif kind == "end_of_turn":
        result.end_of_turn = response.end_of_turn
        result.deltas_before_score = len(result.deltas)
    elif kind == "text_delta":
        result.deltas.append(response.text_delta.text)
    elif kind == "function_call_delta":
        result.call_deltas.append(response.function_call_delta)
    elif kind == "function_call":
        result.calls.append(response.function_call)
    elif kind == "done":
        result.done = response.done


async def respond(channel: grpc.aio.Channel, requests: list[conversation_pb2.RespondRequest]) -> TurnResult:
    """Send a whole turn; return everything that came back (AioRpcError with the server's status)."""
    call = conversation_pb2_grpc.ConversationServiceStub(channel).Respond()

    async def send() -> None:
        # Written one by one, so a server that ends the call early (bad input) is seen with
        # its own status instead of a failed send on a closed stream.
        with contextlib.suppress(grpc.aio.AioRpcError, asyncio.InvalidStateError):
            for request in requests:
                await call.write(request)
            await call.done_writing()

    sender = asyncio.create_task(send())
    result = TurnResult()
    try:
        async for response in call:
            collect(result, response)
    finally:
        await sender
    return result


async def ask(channel: grpc.aio.Channel, session_id: str, question: str, **header_fields: object) -> TurnResult:
    return await respond(channel, [header(session_id, **header_fields), text(question), END])


async def cancel_after(
    channel: grpc.aio.Channel, session_id: str, question: str, deltas: int, max_output_tokens: int = 400
) -> TurnResult:
    """Start a long reply, cancel the call (a barge-in) once ``deltas`` text deltas arrived."""
    call = conversation_pb2_grpc.ConversationServiceStub(channel).Respond()
    for request in (
        header(session_id, turn_id="t1", generation={"max_output_tokens": max_output_tokens}),
        text(question),
        END,
    ):
        await call.write(request)
    await call.done_writing()
    result = TurnResult()
    async for response in call:
        collect(result, response)
        if len(result.deltas) == deltas:
            break
    call.cancel()
    return result
