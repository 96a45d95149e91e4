"""The WebSocket transport's inbound budget: the wait it asks for, on a fake clock."""

from services.edge.websocket import InboundBudget


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
