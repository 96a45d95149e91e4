"""SIGTERM with streams open: the service drains within its bound and clients get a clean status."""

import asyncio
from collections.abc import AsyncIterator

import grpc
import numpy as np
from parley.v1 import vad_pb2, vad_pb2_grpc

from tests.support.processes import start_service
from tests.support.vad_client import audio_requests, config_request

DRAIN_SECONDS = 3


async def test_sigterm_ends_open_streams_with_unavailable_and_exits() -> None:
    service = start_service("services.vad", "--drain-seconds", str(DRAIN_SECONDS))
    try:
        async with grpc.aio.insecure_channel(service.grpc_address) as channel:
            stub = vad_pb2_grpc.VoiceActivityServiceStub(channel)
            never = asyncio.Event()
            sent = [asyncio.Event() for _ in range(4)]

            async def live_stream(index: int) -> AsyncIterator[vad_pb2.DetectRequest]:
                yield config_request()
                for request in audio_requests(np.zeros(16000, np.float32), 16000, 32):
                    yield request
                sent[index].set()
                await never.wait()  # a call that is still going on: more audio would follow

            calls = [stub.Detect(live_stream(i)) for i in range(4)]
            for call, done_sending in zip(calls, sent, strict=True):
                assert (await call.read()).HasField("ready")
                await done_sending.wait()

            service.terminate()
            codes = await asyncio.gather(*(call.code() for call in calls))
            details = await asyncio.gather(*(call.details() for call in calls))
            assert set(codes) == {grpc.StatusCode.UNAVAILABLE}
            assert all("shutting down" in detail for detail in details)
        # The process exits by itself (exit status 0) well within the drain bound.
        assert await asyncio.to_thread(service.process.wait, DRAIN_SECONDS + 10) == 0
        assert any(record.get("msg") == "vad stopped" for record in service.logs)
    finally:
        service.stop()


async def test_sigterm_without_streams_exits_cleanly() -> None:
    service = start_service("services.vad")
    service.terminate()
    assert await asyncio.to_thread(service.process.wait, 15) == 0
