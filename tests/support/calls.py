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
