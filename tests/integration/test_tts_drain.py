"""SIGTERM: open streams still waiting for text are ended with UNAVAILABLE; a stream whose text is
complete is spoken to the end; the process then exits by itself."""

import asyncio
from collections.abc import AsyncIterator

import grpc
from parley.v1 import speech_pb2, speech_pb2_grpc

from tests.support.processes import start_service
from tests.support.tts_client import END_OF_TEXT, config_request, read_rest, text_request

DRAIN_SECONDS = 10


async def test_sigterm_ends_waiting_streams_finishes_complete_ones_and_exits() -> None:
    service = start_service("services.tts", "--drain-seconds", str(DRAIN_SECONDS))
    try:
        async with grpc.aio.insecure_channel(service.grpc_address) as channel:
            stub = speech_pb2_grpc.SpeechSynthesisServiceStub(channel)
            never = asyncio.Event()

            async def waiting_for_text() -> AsyncIterator[speech_pb2.SynthesizeRequest]:
                yield config_request()
                yield text_request("The model is still thinking,")
                await never.wait()  # more text would follow

            waiting = [stub.Synthesize(waiting_for_text()) for _ in range(3)]
            for call in waiting:
                assert (await call.read()).HasField("audio")
            complete_text = "This answer is complete. It is spoken to its end even while the server drains."
            complete = stub.Synthesize(iter([config_request(), text_request(complete_text), END_OF_TEXT]))
            assert (await complete.read()).HasField("audio")

            service.terminate()
            for call in waiting:
                await read_rest(call)
                assert await call.code() == grpc.StatusCode.UNAVAILABLE
                assert "shutting down" in (await call.details() or "")
            rest = await read_rest(complete)
            assert await complete.code() == grpc.StatusCode.OK
            assert " ".join(r.segment.text for r in rest if r.HasField("segment")) == complete_text
            assert rest[-1].HasField("done")
        assert await asyncio.to_thread(service.process.wait, DRAIN_SECONDS + 10) == 0
        assert any(record.get("msg") == "tts stopped" for record in service.logs)
    finally:
        service.stop()


async def test_sigterm_without_streams_exits_cleanly() -> None:
    service = start_service("services.tts")
    service.terminate()
    assert await asyncio.to_thread(service.process.wait, 15) == 0
