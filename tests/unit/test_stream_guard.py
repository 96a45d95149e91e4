"""The service kit's frame around every streaming call: capacity, gauges, and the status a client gets."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator

import grpc
import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge

from services.common.server import InvalidRequest, Lifecycle, RequestError
from services.common.streams import StreamGuard, StreamMetrics


class Aborted(Exception):
    """What grpc.aio's context.abort raises."""


class FakeContext:
    def __init__(self) -> None:
        self.status: tuple[grpc.StatusCode, str] | None = None

    def peer(self) -> str:
        return "ipv4:127.0.0.1:1"

    async def abort(self, code: grpc.StatusCode, message: str) -> None:
        self.status = (code, message)
        raise Aborted


async def _requests(*items: str) -> AsyncIterator[str]:
    for item in items:
        yield item


def _guard(lifecycle: Lifecycle | None = None, max_streams: int | None = None) -> tuple[StreamGuard, StreamMetrics]:
    registry = CollectorRegistry()
    metrics = StreamMetrics(
        errors=Counter("errors", "", ["code"], registry=registry),
        opened=Counter("opened", "", registry=registry),
        active=Gauge("active", "", registry=registry),
    )
    return StreamGuard("TEST", lifecycle or Lifecycle(), metrics, max_streams=max_streams), metrics


async def _run(guard: StreamGuard, handler, *requests: str) -> tuple[list[str], FakeContext]:
    context = FakeContext()
    out: list[str] = []
    try:
        async for response in guard.serve(_requests(*requests), context, handler):  # type: ignore[arg-type]
            out.append(response)
    except Aborted:
        pass
    return out, context


async def echo(requests: AsyncIterator[str], stream_id: int) -> AsyncGenerator[str, None]:
    async for request in requests:
        if request == "bad":
            raise InvalidRequest("bad request")
        if request == "missing":
            raise RequestError("no such thing", grpc.StatusCode.NOT_FOUND)
        if request == "bug":
            raise ZeroDivisionError
        yield f"{stream_id}:{request}"


async def test_a_stream_is_served_numbered_and_counted() -> None:
    guard, metrics = _guard()
    out, context = await _run(guard, echo, "a", "b")
    assert out == ["1:a", "1:b"] and context.status is None
    assert guard.active == 0 and metrics.opened is not None and metrics.opened._value.get() == 1  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("request_", "code", "message"),
    [
        ("bad", grpc.StatusCode.INVALID_ARGUMENT, "bad request"),
        ("missing", grpc.StatusCode.NOT_FOUND, "no such thing"),
        ("bug", grpc.StatusCode.INTERNAL, "the TEST server failed; see its log"),
    ],
)
async def test_an_error_ends_the_call_with_its_status_and_is_counted(
    request_: str, code: grpc.StatusCode, message: str
) -> None:
    guard, metrics = _guard()
    out, context = await _run(guard, echo, "a", request_, "c")
    assert out == ["1:a"]
    assert context.status == (code, message)
    assert metrics.errors.labels(code.name)._value.get() == 1  # type: ignore[attr-defined]
    assert guard.active == 0


async def test_a_full_service_refuses_the_call() -> None:
    guard, _ = _guard(max_streams=1)
    blocked = asyncio.Event()

    async def waits(requests: AsyncIterator[str], stream_id: int) -> AsyncGenerator[str, None]:
        blocked.set()
        await asyncio.Event().wait()
        yield ""

    first = asyncio.create_task(_run(guard, waits, "a"))
    await blocked.wait()
    _, context = await _run(guard, echo, "a")
    assert context.status is not None and context.status[0] == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "at capacity (1 streams)" in context.status[1]
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    assert guard.active == 0


async def test_draining_ends_open_streams_with_unavailable() -> None:
    lifecycle = Lifecycle()
    guard, _ = _guard(lifecycle)

    async def endless() -> AsyncIterator[str]:
        yield "a"
        lifecycle.draining.set()
        await asyncio.Event().wait()
        yield "never"

    context = FakeContext()
    with pytest.raises(Aborted):
        async for _ in guard.serve(endless(), context, echo):  # type: ignore[arg-type]
            pass
    assert context.status is not None and context.status[0] == grpc.StatusCode.UNAVAILABLE
