"""Lifecycle.requests: passes requests through, and stops a waiting stream when draining starts."""

import asyncio
from collections.abc import AsyncIterator

import pytest

from services.common.server import Lifecycle, ServerDraining


async def test_requests_pass_through_until_the_client_closes() -> None:
    async def requests() -> AsyncIterator[int]:
        for value in range(3):
            yield value

    assert [r async for r in Lifecycle().requests(requests())] == [0, 1, 2]


async def test_draining_interrupts_a_stream_waiting_for_its_next_request() -> None:
    lifecycle = Lifecycle()
    never = asyncio.Event()

    async def requests() -> AsyncIterator[int]:
        yield 1
        await never.wait()  # a live stream: the client has not sent anything more
        yield 2

    received = []

    async def consume() -> None:
        async for request in lifecycle.requests(requests()):
            received.append(request)
            lifecycle.draining.set()

    with pytest.raises(ServerDraining):
        await asyncio.wait_for(consume(), timeout=5)
    assert received == [1]
