"""The inbound budget (the wait it asks for, on a fake clock) and the data channel's inbox."""

import asyncio

from openai.types import realtime as rt

from services.edge.inbound import EventInbox, InboundBudget


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_within_the_budget_is_read_at_once() -> None:
    budget = InboundBudget(rate=1000, burst=5000, clock=FakeClock())
    assert [budget.spend(1000) for _ in range(5)] == [0.0] * 5


def test_beyond_the_burst_the_wait_is_the_time_to_earn_the_excess_back() -> None:
    budget = InboundBudget(rate=1000, burst=5000, clock=FakeClock())
    assert budget.spend(5000) == 0.0
    assert budget.spend(2000) == 2.0  # 2000 bytes over, at 1000 a second


def test_waiting_refills_the_budget_but_never_beyond_the_burst() -> None:
    clock = FakeClock()
    budget = InboundBudget(rate=1000, burst=5000, clock=clock)
    assert budget.spend(7000) == 2.0
    clock.now += 2.0  # the client was held back as long as asked: back at zero
    assert budget.spend(1000) == 1.0
    clock.now += 3600  # an hour quiet: a full burst, not an hour's worth
    assert budget.spend(5000) == 0.0
    assert budget.spend(500) == 0.5


def test_a_client_sending_at_the_rate_is_never_held_back() -> None:
    clock = FakeClock()
    budget = InboundBudget(rate=64_000, burst=8_000_000, clock=clock)
    waits = []
    for _ in range(10_000):  # real-time audio: 20 ms appends for 200 s
        clock.now += 0.02
        waits.append(budget.spend(1280))
    assert max(waits) == 0.0


# The data channel's inbox: SCTP cannot be paused, so what waits is bounded by one burst.


async def test_a_data_channel_inbox_hands_events_on_in_order_and_refuses_beyond_a_burst() -> None:
    refused: list[rt.RealtimeErrorEvent] = []
    inbox = EventInbox(InboundBudget(rate=1e9, burst=100, clock=FakeClock()), refuse=refused.append)
    for text in ("a" * 40, "b" * 40, "c" * 40):  # the third would make 120 bytes wait
        inbox.put(text)
    assert [r.error.code for r in refused] == ["rate_limit_exceeded"]
    assert inbox.queued_bytes == 80

    handled: list[str] = []
    closed = asyncio.Event()

    async def handler(message: str | bytes) -> None:
        handled.append(str(message)[0])
        if len(handled) == 2:
            closed.set()

    await asyncio.wait_for(inbox.handle(handler, closed), timeout=5)
    assert handled == ["a", "b"]
    assert inbox.queued_bytes == 0
    inbox.put("d" * 100)  # room again once handled: a whole burst may wait
    assert len(refused) == 1


async def test_a_data_channel_inbox_counts_an_event_as_waiting_until_it_is_handled() -> None:
    refused: list[rt.RealtimeErrorEvent] = []
    inbox = EventInbox(InboundBudget(rate=1e9, burst=100, clock=FakeClock()), refuse=refused.append)
    closed = asyncio.Event()
    started, release = asyncio.Event(), asyncio.Event()

    async def slow_handler(message: str | bytes) -> None:
        started.set()
        await release.wait()
        closed.set()

    inbox.put("a" * 60)
    task = asyncio.create_task(inbox.handle(slow_handler, closed))
    await started.wait()
    inbox.put("b" * 60)  # the first is still being handled: 120 bytes would wait
    assert len(refused) == 1
    release.set()
    await asyncio.wait_for(task, timeout=5)


async def test_holding_back_ends_when_the_session_closes() -> None:
    budget = InboundBudget(rate=1, burst=1, clock=FakeClock())
    closed = asyncio.Event()
    closed.set()
    await asyncio.wait_for(budget.hold_back(3600, closed), timeout=5)  # asks an hour; the session is over
