"""The LLM worker pool: sessions wait in a FIFO queue when every replica is full, and a replica
that stops answering is taken out."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Iterator

import pytest

from tests.support.counts import edge_metric, wait_for_edge_metric
from tests.support.processes import ServiceProcess, start_edge, start_scripted_llm
from tests.support.realtime_ws import RealtimeSocket, realtime_socket


async def _text_turn_works(socket: RealtimeSocket) -> None:
    await socket.send({"type": "session.update", "session": {"type": "realtime", "output_modalities": ["text"]}})
    await socket.send(
        {
            "type": "conversation.item.create",
            "item": {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Say hello."}]},
        }
    )
    await socket.send({"type": "response.create"})
    done = await socket.next_event("response.done", timeout=60)
    assert done["response"]["status"] == "completed", done


@pytest.fixture(scope="module", params=["--llm-sessions-per-replica=1", "--max-sessions=1"])
def one_session_edge(
    request: pytest.FixtureRequest,
    vad_service: ServiceProcess,
    scripted_llm: ServiceProcess,
    tts_service: ServiceProcess,
) -> Iterator[ServiceProcess]:
    """Room for one talking session: on the replica, or at the edge itself. Either way the next
    arrivals wait in one line (the edge's limit used to turn them away with server_full)."""
    edge = start_edge(vad_service, scripted_llm, tts_service, request.param)
    yield edge
    assert edge.stop() == 0


class Sockets:
    """WebSocket clients opened and closed in any order."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._stacks: dict[str, contextlib.AsyncExitStack] = {}

    async def open(self, name: str) -> RealtimeSocket:
        stack = contextlib.AsyncExitStack()
        socket = await stack.enter_async_context(realtime_socket(self._url))
        self._stacks[name] = stack
        return socket

    async def close(self, name: str) -> None:
        await self._stacks.pop(name).aclose()

    async def close_all(self) -> None:
        for name in list(self._stacks):
            await self.close(name)


@contextlib.asynccontextmanager
async def _sockets(url: str) -> AsyncIterator[Sockets]:
    sockets = Sockets(url)
    try:
        yield sockets
    finally:
        await sockets.close_all()


async def test_sessions_wait_in_line_with_positions_and_are_all_served(one_session_edge: ServiceProcess) -> None:
    edge = one_session_edge
    left_before = await edge_metric(edge, "parley_edge_queue_left_total")
    async with _sockets(edge.url) as sockets:
        open_socket, close_socket = sockets.open, sockets.close
        a = await open_socket("a")
        await a.next_event("session.created")
        await _text_turn_works(a)
        assert a.of_type("parley.queue.updated") == [], "a free replica admits at once"

        b = await open_socket("b")
        b_place = await b.next_event("parley.queue.updated")
        c = await open_socket("c")
        c_place = await c.next_event("parley.queue.updated")
        assert (b_place["position"], c_place["position"]) == (1, 2)
        assert c_place["queue_length"] == 2 and 0 < b_place["eta_seconds"] < c_place["eta_seconds"]
        # Waiting is not talking yet.
        await c.send({"type": "response.create"})
        assert (await c.next_event("error"))["error"]["code"] == "session_queued"

        await close_socket("c")  # leaves the line
        await wait_for_edge_metric(edge, "parley_edge_queue_length", 1)
        assert await edge_metric(edge, "parley_edge_queue_left_total") == left_before + 1
        d = await open_socket("d")
        assert (await d.next_event("parley.queue.updated"))["position"] == 2

        await close_socket("a")  # the first in line gets the slot, the next moves up
        await b.next_event("parley.queue.admitted", timeout=15)
        assert (await d.next_event("parley.queue.updated"))["position"] == 1
        await _text_turn_works(b)

        await close_socket("b")
        admitted = await d.next_event("parley.queue.admitted", timeout=15)
        assert admitted["waited_seconds"] > 0
        await _text_turn_works(d)
    await wait_for_edge_metric(edge, "parley_edge_queue_length", 0)


@pytest.fixture(scope="module")
def second_llm() -> Iterator[ServiceProcess]:
    service = start_scripted_llm("--max-sessions=8")
    yield service
    service.stop()


async def test_a_replica_that_stops_answering_gets_no_new_sessions(
    vad_service: ServiceProcess, scripted_llm: ServiceProcess, tts_service: ServiceProcess, second_llm: ServiceProcess
) -> None:
    first, second = scripted_llm.grpc_address, second_llm.grpc_address
    edge = start_edge(
        vad_service,
        scripted_llm,
        tts_service,
        f"--llm-addresses={json.dumps([first, second])}",
        "--llm-sessions-per-replica=4",
        "--replica-check-seconds=0.5",
    )

    def sessions_on(address: str) -> str:
        return f'parley_edge_replica_sessions{{replica="{address}"}}'

    try:
        async with _sockets(edge.url) as sockets:
            open_socket = sockets.open
            for name in ("one", "two"):  # the least loaded replica takes each: one on each
                await (await open_socket(name)).next_event("session.created")
            await wait_for_edge_metric(edge, sessions_on(first), 1)
            await wait_for_edge_metric(edge, sessions_on(second), 1)

            second_llm.stop()
            await wait_for_edge_metric(edge, f'parley_edge_replica_healthy{{replica="{second}"}}', 0)
            for name in ("three", "four"):
                socket = await open_socket(name)
                await socket.next_event("session.created")
                await _text_turn_works(socket)
            assert await edge_metric(edge, sessions_on(first)) == 3
            assert await edge_metric(edge, sessions_on(second)) == 1, "only the session pinned there before"
    finally:
        assert edge.stop() == 0
