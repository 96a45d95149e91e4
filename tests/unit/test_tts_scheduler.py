"""SynthesisScheduler: worker threads, earliest deadline first, cancellation, failures."""

import asyncio
import threading
from collections.abc import AsyncIterator

import pytest

from services.tts.backends import Cancellation
from services.tts.scheduler import SynthesisScheduler


@pytest.fixture
async def scheduler() -> AsyncIterator[SynthesisScheduler]:
    scheduler = SynthesisScheduler(workers=1)
    scheduler.start()
    yield scheduler
    scheduler.close()


async def occupy(scheduler: SynthesisScheduler) -> tuple[asyncio.Task[None], threading.Event]:
    """Keep the single worker busy until the returned event is set."""
    release, started = threading.Event(), threading.Event()

    def hold(cancellation: Cancellation) -> None:
        started.set()
        release.wait(10)

    task = asyncio.create_task(scheduler.run(hold, deadline=0.0))
    assert await asyncio.to_thread(started.wait, 10)
    return task, release


async def test_work_runs_off_the_event_loop_and_returns_its_result(scheduler: SynthesisScheduler) -> None:
    loop_thread = threading.get_ident()
    thread = await scheduler.run(lambda cancellation: threading.get_ident(), deadline=0.0)
    assert thread != loop_thread


async def test_earliest_deadline_runs_first(scheduler: SynthesisScheduler) -> None:
    busy, release = await occupy(scheduler)
    order: list[str] = []
    jobs = [
        asyncio.create_task(scheduler.run(lambda c, name=name: order.append(name), deadline=deadline))  # type: ignore[misc]
        for name, deadline in (("late", 30.0), ("urgent", 10.0), ("middle", 20.0))
    ]
    await asyncio.sleep(0)  # one turn of the loop: each new task runs up to its await, queueing its job
    assert scheduler.queued == 3
    release.set()
    await asyncio.gather(busy, *jobs)
    assert order == ["urgent", "middle", "late"]


async def test_a_cancelled_job_never_starts_and_a_running_one_is_told(scheduler: SynthesisScheduler) -> None:
    told = threading.Event()
    running = threading.Event()

    def long_work(cancellation: Cancellation) -> None:
        running.set()
        with cancellation.on_cancel(told.set):
            told.wait(10)

    ran_queued = threading.Event()
    running_task = asyncio.create_task(scheduler.run(long_work, deadline=0.0))
    assert await asyncio.to_thread(running.wait, 10)
    queued_task = asyncio.create_task(scheduler.run(lambda c: ran_queued.set(), deadline=1.0))
    await asyncio.sleep(0)
    assert scheduler.queued == 1
    queued_task.cancel()
    running_task.cancel()
    assert await asyncio.to_thread(told.wait, 10)
    for task in (queued_task, running_task):
        with pytest.raises(asyncio.CancelledError):
            await task
    # The worker is free again and skipped the cancelled job.
    assert await scheduler.run(lambda c: "next", deadline=2.0) == "next"
    assert not ran_queued.is_set()


async def test_a_failure_reaches_its_caller_and_the_worker_carries_on(scheduler: SynthesisScheduler) -> None:
    def broken(cancellation: Cancellation) -> None:
        raise RuntimeError("model exploded")

    with pytest.raises(RuntimeError, match="model exploded"):
        await scheduler.run(broken, deadline=0.0)
    assert await scheduler.run(lambda c: 42, deadline=0.0) == 42
