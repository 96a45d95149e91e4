"""Runs synthesis on worker threads, off the event loop, most urgent piece first.

Every piece of work carries a deadline: for a stream's first piece, the moment its text was
ready (nobody is hearing anything yet); for later pieces, the moment the stream's listener runs
out of audio already sent. Workers take the earliest deadline first, so a new stream's first
words overtake the later sentences of streams that are comfortably ahead, and a stream falling
behind is served before one that is not.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from services.tts import metrics
from services.tts.backends import Cancellation

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(order=True)
class _Job(Generic[T]):
    deadline: float
    sequence: int
    work: Callable[[Cancellation], T] = field(compare=False)
    future: asyncio.Future[T] = field(compare=False)
    cancellation: Cancellation = field(compare=False, default_factory=Cancellation)
    queued_at: float = field(compare=False, default_factory=time.monotonic)


class SynthesisScheduler:
    """Owns the worker threads. ``await run(work, deadline)`` from the event loop."""

    def __init__(self, workers: int) -> None:
        self._heap: list[_Job[Any]] = []
        self._condition = threading.Condition()
        self._sequence = itertools.count()
        self._closed = False
        self._threads = [
            threading.Thread(target=self._work_loop, name=f"tts-synthesis-{i}", daemon=True) for i in range(workers)
        ]
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        for thread in self._threads:
            thread.start()

    def close(self) -> None:
        with self._condition:
            self._closed = True
            for job in self._heap:
                job.cancellation.cancel()
            self._condition.notify_all()
        for thread in self._threads:
            thread.join(timeout=5)

    @property
    def queued(self) -> int:
        with self._condition:
            return len(self._heap)

    async def run(self, work: Callable[[Cancellation], T], deadline: float) -> T:
        """Run ``work(cancellation)`` on a worker thread, in deadline order (``time.monotonic()``).

        If the awaiting task is cancelled (the client went away), the work is cancelled too: a
        queued job never starts and a running one is told through its Cancellation.
        """
        assert self._loop is not None, "start() the scheduler first"
        job: _Job[T] = _Job(deadline, next(self._sequence), work, self._loop.create_future())
        with self._condition:
            if self._closed:
                raise RuntimeError("the synthesis scheduler is closed")
            heapq.heappush(self._heap, job)
            self._condition.notify()
        try:
            return await job.future
        except asyncio.CancelledError:
            job.cancellation.cancel()
            raise

    def _work_loop(self) -> None:
        while True:
            with self._condition:
                while not self._heap and not self._closed:
                    self._condition.wait()
                if self._closed:
                    return
                job = heapq.heappop(self._heap)
            if job.cancellation.cancelled or job.future.done():
                continue  # its stream went away while it waited
            metrics.QUEUE_WAIT_SECONDS.observe(time.monotonic() - job.queued_at)
            try:
                result = job.work(job.cancellation)
            except Exception as exc:  # a failed piece fails its stream, not the worker
                log.exception("synthesis failed")
                self._resolve(job, None, exc)
            else:
                self._resolve(job, result, None)

    def _resolve(self, job: _Job[Any], result: object, error: BaseException | None) -> None:
        assert self._loop is not None

        def settle() -> None:
            if job.future.done():
                return
            if error is None:
                job.future.set_result(result)
            else:
                job.future.set_exception(error)

        with contextlib.suppress(RuntimeError):  # the event loop has closed: nobody is waiting
            self._loop.call_soon_threadsafe(settle)
