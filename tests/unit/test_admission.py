"""Admission to LLM replicas without a network: FIFO order, positions, ETAs, leaving the line."""

import asyncio

import grpc
import pytest

from services.edge.admission import Admission
from services.edge.pool import LlmPool, Replica
from services.edge.settings import EdgeSettings


class FakePool:
    """Stands in for the LLM pool: ``slots`` sessions fit, the test frees them."""

    def __init__(self, slots: int) -> None:
        self.slots = slots
        self.placed: list[str] = []
        self.on_room = lambda: None

    def place(self, session_id: str) -> Replica | None:
        if len(self.placed) >= self.slots:
            return None
        self.placed.append(session_id)
        return Replica(session_id, None, None)  # type: ignore[arg-type]

    def release(self, session_id: str) -> None:
        if session_id in self.placed:
            self.placed.remove(session_id)
            self.on_room()


class Caller:
    def __init__(self, session_id: str) -> None:
        self.session_id = session_id
        self.told: list[tuple[int, int, float]] = []

    def queue_update(self, position: int, length: int, eta_seconds: float) -> None:
        self.told.append((position, length, eta_seconds))


def admission(slots: int) -> tuple[Admission, FakePool]:
    pool = FakePool(slots)
    gate = Admission(pool, prior_session_seconds=60)  # type: ignore[arg-type]
    pool.on_room = gate.room_changed
    return gate, pool


async def test_callers_are_admitted_in_order_and_told_their_place() -> None:
    gate, pool = admission(slots=1)
    a, b, c = Caller("a"), Caller("b"), Caller("c")
    assert (await gate.admit(a)).address == "a"
    waiting_b = asyncio.create_task(gate.admit(b))
    waiting_c = asyncio.create_task(gate.admit(c))
    await asyncio.sleep(0)  # let both join the line
    assert (b.told[-1][:2], c.told[-1][:2]) == ((1, 2), (2, 2))
    assert 0 < b.told[-1][2] < c.told[-1][2], "the second in line waits longer"
    gate.leave("a")
    assert (await waiting_b).address == "b" and pool.placed == ["b"]
    assert c.told[-1][:2] == (1, 1)
    gate.leave("b")
    assert (await waiting_c).address == "c"
    assert gate.waiting == 0


async def test_a_caller_who_goes_away_leaves_the_line() -> None:
    gate, pool = admission(slots=1)
    await gate.admit(Caller("a"))
    b, c = Caller("b"), Caller("c")
    waiting_b = asyncio.create_task(gate.admit(b))
    waiting_c = asyncio.create_task(gate.admit(c))
    await asyncio.sleep(0)
    waiting_b.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting_b
    assert gate.waiting == 1 and c.told[-1][:2] == (1, 1), "the next one moves up"
    gate.leave("a")
    assert (await waiting_c).address == "c" and pool.placed == ["c"]


async def test_a_newcomer_does_not_jump_the_line() -> None:
    gate, _ = admission(slots=1)
    await gate.admit(Caller("a"))
    waiting = asyncio.create_task(gate.admit(Caller("b")))
    await asyncio.sleep(0)
    assert gate.try_admit(Caller("late")) is None, "someone is already waiting"
    gate.leave("a")
    assert (await waiting).address == "b"


def test_the_eta_without_anyone_admitted_is_the_typical_length_per_place() -> None:
    gate, _ = admission(slots=0)
    assert gate.eta_seconds(1) == 60 and gate.eta_seconds(3) == 180


async def test_the_pool_finds_replicas_by_dns_on_loopback() -> None:
    settings = EdgeSettings(llm_dns="localhost:50999", replica_check_seconds=0.5)
    pool = LlmPool(settings, lambda address: grpc.aio.insecure_channel(address))
    try:
        await pool.check()
        assert "127.0.0.1:50999" in pool.replicas and pool.replicas["127.0.0.1:50999"].from_dns
        assert all(not r.healthy for r in pool.replicas.values()), "nothing listens there: out"
        assert pool.place("s1") is None
    finally:
        await pool.close()
