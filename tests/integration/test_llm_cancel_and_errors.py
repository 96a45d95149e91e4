"""Barge-in cancellation, bad input, capacity and drain of the LLM service."""

import asyncio
import io
import uuid
from collections.abc import AsyncIterator

import grpc
import numpy as np
import pytest
from parley.v1 import conversation_pb2, conversation_pb2_grpc
from PIL import Image

from services.llm.settings import DEFAULT_SYSTEM_PROMPT
from tests.integration.test_llm_conversation import prompt_tokens
from tests.integration.test_llm_conversation import tokenizer as tokenizer  # the fixture
from tests.support.calls import unparseable_request_error
from tests.support.llm_client import (
    END,
    TurnResult,
    ask,
    audio_chunks,
    cancel_after,
    collect,
    header,
    image,
    respond,
    text,
)
from tests.support.processes import ServiceProcess, start_service
from tests.support.tooling import metric_value, scrape_metrics


def new_session() -> str:
    return f"test-{uuid.uuid4().hex[:8]}"


def output_tokens_total(service: ServiceProcess) -> float:
    return metric_value(scrape_metrics(service), "parley_llm_output_tokens_total")


async def test_cancelling_a_reply_stops_generation_and_keeps_the_partial(
    llm_service: ServiceProcess, llm_channel: grpc.aio.Channel, tokenizer
) -> None:
    session = new_session()
    story = "Tell me a long story about a dragon who learns to bake bread."
    before = output_tokens_total(llm_service)
    result = await cancel_after(llm_channel, session, story, deltas=5)  # barge-in

    # The next turn of the session waits until the cancelled one has let go of it.
    after_cancel = await respond(llm_channel, [header(session, transcribe_only=True), text("Stop."), END])
    generated = output_tokens_total(llm_service) - before
    assert after_cancel.accepted.history_turns == 1
    # At ~30 tokens a second, 100 ms is about 3 tokens; a few more may have been in flight.
    assert generated - len(result.deltas) <= 8, f"{generated} tokens generated, {len(result.deltas)} received"

    # The history holds the reply as far as it was sent: the next prompt is exactly that.
    check = await ask(llm_channel, session, "Go on.", generation={"max_output_tokens": 1})
    partial = "".join(result.deltas)
    expected = prompt_tokens(tokenizer, [(story, partial), ("Stop.", None), ("Go on.", None)], DEFAULT_SYSTEM_PROMPT)
    assert check.done.usage.input_tokens == expected


def corrupt_jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (1, 2, 3)).save(buffer, format="JPEG")
    return buffer.getvalue()[:150]


def audio_of(seconds: float, rate: int = 16000) -> list[conversation_pb2.RespondRequest]:
    return audio_chunks(np.zeros(int(seconds * rate), np.float32), rate, chunk_ms=6000)


BAD_TURNS = {
    "empty-turn": ([header("s-empty"), END], "no input"),
    "no-header": ([text("hello"), END], "must be a TurnHeader"),
    "two-headers": ([header("s-two"), header("s-two"), END], "one TurnHeader"),
    "bad-session-id": ([header("no spaces allowed"), text("hi"), END], "session_id"),
    "unsupported-rate": ([header("s-rate"), *audio_of(0.5, 44100), END], "not supported"),
    "ten-minutes-of-audio": ([header("s-long"), *audio_of(600), END], "longer than the limit of 120 s"),
    "corrupt-jpeg": ([header("s-jpeg"), image(corrupt_jpeg()), END], "not a valid JPEG"),
    "text-over-limit": ([header("s-text"), text("x" * 16_001), END], "longer than 16000 characters"),
    "no-end-of-input": ([header("s-open"), text("hi")], "without EndOfInput"),
    "unknown-language": (
        [header("s-lang", transcription_language="fr"), *audio_of(0.5), END],
        "transcription_language 'fr' is not one this recogniser knows (en)",
    ),
    "unit-outside-omni": (
        [header("s-unit"), conversation_pb2.RespondRequest(end_of_unit=conversation_pb2.EndOfUnit()), END],
        "omni mode",
    ),
}


@pytest.mark.parametrize("name", BAD_TURNS)
async def test_bad_turns_get_invalid_argument_and_the_service_stays_up(
    llm_channel: grpc.aio.Channel, name: str
) -> None:
    requests, message = BAD_TURNS[name]
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await respond(llm_channel, requests)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT, error.value.details()
    assert message in (error.value.details() or "")
    check = new_session()
    assert "Paris" in (await ask(llm_channel, check, "What is the capital of France?")).reply
    stub = conversation_pb2_grpc.ConversationServiceStub(llm_channel)
    await stub.EndSession(conversation_pb2.EndSessionRequest(session_id=check))
    # The failed turn's session was never kept.
    with pytest.raises(grpc.aio.AioRpcError) as gone:
        await stub.EndSession(conversation_pb2.EndSessionRequest(session_id=requests[0].header.session_id or "x"))
    assert gone.value.code() == grpc.StatusCode.NOT_FOUND


async def test_unknown_sessions_are_not_found(llm_channel: grpc.aio.Channel) -> None:
    stub = conversation_pb2_grpc.ConversationServiceStub(llm_channel)
    for call in (
        stub.EndSession(conversation_pb2.EndSessionRequest(session_id="never-opened")),
        stub.ResetSession(conversation_pb2.ResetSessionRequest(session_id="never-opened")),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await call
        assert error.value.code() == grpc.StatusCode.NOT_FOUND
        assert "never-opened" in (error.value.details() or "")


async def test_capacity_load_and_drain() -> None:
    service = start_service("services.llm", "--max-sessions", "2", "--drain-seconds", "30", timeout=180)
    try:
        async with grpc.aio.insecure_channel(service.grpc_address) as channel:
            stub = conversation_pb2_grpc.ConversationServiceStub(channel)
            one_token = {"generation": {"max_output_tokens": 1}}
            await ask(channel, "first", "Hi.", **one_token)
            await ask(channel, "second", "Hi.", **one_token)
            with pytest.raises(grpc.aio.AioRpcError) as error:
                await ask(channel, "third", "Hi.", **one_token)
            assert error.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "maximum of 2 sessions" in (error.value.details() or "")
            load = await stub.GetLoad(conversation_pb2.GetLoadRequest())
            assert (load.active_sessions, load.max_sessions, load.active_turns) == (2, 2, 0)
            await stub.EndSession(conversation_pb2.EndSessionRequest(session_id="first"))
            await ask(channel, "third", "Hi.", **one_token)

            # SIGTERM during a reply: the turn in flight finishes, then the process exits cleanly.
            result = TurnResult()
            requests = [header("second", generation={"max_output_tokens": 40}), text("Count to twenty."), END]

            async def send() -> AsyncIterator[conversation_pb2.RespondRequest]:
                for request in requests:
                    yield request

            call = stub.Respond(send())
            async for response in call:
                collect(result, response)
                if len(result.deltas) == 1:
                    service.terminate()
            assert result.done is not None
            assert result.done.finish_reason in (
                conversation_pb2.FINISH_REASON_STOP,
                conversation_pb2.FINISH_REASON_LENGTH,
            )
        assert await asyncio.to_thread(service.process.wait, 60) == 0
    finally:
        service.stop()


async def test_bytes_that_are_no_request_get_invalid_argument(llm_channel: grpc.aio.Channel) -> None:
    error = await unparseable_request_error(llm_channel, "/parley.v1.ConversationService/Respond")
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error
    assert "could not be parsed" in (error.details() or "")


async def test_a_call_that_never_sends_its_header_is_refused_in_time() -> None:
    """The LLM used to wait for a TurnHeader for ever (an edge whose input writer had died)."""
    service = start_service("tests.support.scripted_llm", "--header-wait-seconds=0.5", timeout=180)
    try:
        async with grpc.aio.insecure_channel(service.grpc_address) as channel:

            async def nothing() -> AsyncIterator[conversation_pb2.RespondRequest]:
                await asyncio.Event().wait()  # never a request, never half-closed
                yield conversation_pb2.RespondRequest()

            call = conversation_pb2_grpc.ConversationServiceStub(channel).Respond(nothing())
            with pytest.raises(grpc.aio.AioRpcError) as error:
                async for _ in call:
                    pass
        assert error.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED, error.value
        assert "TurnHeader" in (error.value.details() or "")
    finally:
        assert service.stop() == 0
