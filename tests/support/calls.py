"""Helpers for driving streaming gRPC calls in tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import grpc
import pytest


async def stream_until_error(
    method: Callable[[AsyncIterator[Any]], Any], requests: Sequence[Any]
) -> grpc.aio.AioRpcError:
    """Send ``requests`` on a bidi ``method`` (a stub's, e.g. ``stub.Detect``), read until the
    call fails, and return the error (the test fails if the call succeeds)."""

    async def send() -> AsyncIterator[Any]:
        for request in requests:
            yield request

    call = method(send())
    with pytest.raises(grpc.aio.AioRpcError) as error:
        async for _ in call:
            pass
    return error.value


async def unparseable_request_error(channel: grpc.aio.Channel, method: str) -> grpc.aio.AioRpcError:
    """Send bytes that are no protobuf message to the bidi ``method`` (its full path) and return
    the error (the test fails if the call succeeds)."""
    raw = channel.stream_stream(method, request_serializer=lambda b: b, response_deserializer=lambda b: b)
    call = raw(iter([b"\xff\xff\xff\xff not a protobuf message"]))
    with pytest.raises(grpc.aio.AioRpcError) as error:
        async for _ in call:
            pass
    return error.value
