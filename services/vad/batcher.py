"""Runs Silero steps for all open streams together, on one thread off the event loop.

Each stream submits the windows it has; every step of the inference thread advances every
waiting stream by one window in a single batched call (the model is recurrent, so a stream's
windows must go one after another, but different streams batch freely). A stream's job
resolves once all of its windows are done, so a chunk costs one hop to the thread and back.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from services.vad import metrics
from services.vad.model import SileroVad, context_samples

log = logging.getLogger(__name__)


@dataclass(eq=False)
class InferenceJob:
    """Windows of one stream to analyse, with the stream's model state carried through."""

    sample_rate: int
    windows: np.ndarray  # (n, window) float32
    state: np.ndarray  # (2, 128), replaced as steps run
    context: np.ndarray  # (context,), replaced as steps run
    probabilities: np.ndarray = field(init=False)
    step: int = 0
    future: asyncio.Future[None] | None = None

    def __post_init__(self) -> None:
        self.probabilities = np.empty(len(self.windows), dtype=np.float32)

    @property
    def done(self) -> bool:
        return self.step == len(self.windows)


class InferenceBatcher:
    """Owns the inference thread. ``await run(job)`` from any task on the event loop."""

    def __init__(self, model: SileroVad, max_batch: int) -> None:
        self._model = model
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[InferenceJob | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name="vad-inference", daemon=True)
        self._event_loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        self._event_loop = asyncio.get_running_loop()
        self._thread.start()

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=5)

    async def run(self, job: InferenceJob) -> None:
        """Analyse every window of ``job``; its probabilities, state and context are then set."""
        if not len(job.windows):
            return
        job.future = asyncio.get_running_loop().create_future()
        self._queue.put(job)
        await job.future

    def _loop(self) -> None:
        active: list[InferenceJob] = []
        while True:
            if not active:
                job = self._queue.get()
                if job is None:
                    return
                active.append(job)
            while True:
                try:
                    job = self._queue.get_nowait()
                except queue.Empty:
                    break
                if job is None:
                    return
                active.append(job)
            # A stream that went away (cancelled call) is not worth finishing.
            active = [job for job in active if job.future is not None and not job.future.cancelled()]
            for rate in sorted({job.sample_rate for job in active}):
                group = [job for job in active if job.sample_rate == rate][: self._max_batch]
                try:
                    self._step(group, rate)
                except Exception as exc:  # a model failure fails these calls, not the thread
                    log.exception("VAD inference failed")
                    self._resolve(group, exc)
                    active = [job for job in active if job not in group]
            finished = [job for job in active if job.done]
            if finished:
                self._resolve(finished, None)
                active = [job for job in active if not job.done]

    def _step(self, group: list[InferenceJob], rate: int) -> None:
        context = context_samples(rate)
        window = group[0].windows.shape[1]
        inputs = np.empty((len(group), context + window), dtype=np.float32)
        for row, job in enumerate(group):
            inputs[row, :context] = job.context
            inputs[row, context:] = job.windows[job.step]
        states = np.stack([job.state for job in group], axis=1)
        started = time.perf_counter()
        probabilities, new_states = self._model.infer(inputs, states, rate)
        metrics.INFERENCE_SECONDS.observe(time.perf_counter() - started)
        metrics.BATCH_SIZE.observe(len(group))
        metrics.WINDOWS.inc(len(group))
        for row, job in enumerate(group):
            job.probabilities[job.step] = probabilities[row]
            job.state = new_states[:, row, :].copy()
            job.context = inputs[row, -context:].copy()
            job.step += 1

    def _resolve(self, jobs: list[InferenceJob], error: Exception | None) -> None:
        assert self._event_loop is not None
        self._event_loop.call_soon_threadsafe(_set_results, jobs, error)


def _set_results(jobs: list[InferenceJob], error: Exception | None) -> None:
    for job in jobs:
        if job.future is None or job.future.done():
            continue
        if error is None:
            job.future.set_result(None)
        else:
            job.future.set_exception(error)
