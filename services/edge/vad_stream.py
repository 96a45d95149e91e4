"""A session's Detect stream to the VAD service, kept open for the session's life.

It feeds the session's 16 kHz input in whole VAD windows, reopens the stream with backoff when
it fails, and reports the events with session offsets (the VAD counts from its stream's start).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any, Protocol

import grpc
from parley.v1 import audio_pb2, vad_pb2

from services.edge.audio import INPUT_RATE
from services.edge.models import ModelServices, ServiceFailure
from services.edge.protocol import TurnDetection
from services.edge.turn_taking import TurnTiming

log = logging.getLogger(__name__)

# The VAD service takes audio in windows of 512 samples at 16 kHz; whole windows cost least.
_CHUNK_BYTES = 512 * 2
_QUEUE_CHUNKS = 1000  # 20-32 s of audio held while the VAD is away


def detect_config(detection: TurnDetection, timing: TurnTiming) -> vad_pb2.DetectConfig:
    config = vad_pb2.DetectConfig(
        sample_rate=INPUT_RATE,
        threshold=detection.threshold,
        min_silence_ms=timing.pause_ms,
        speech_pad_ms=detection.prefix_padding_ms,
        # One message per chunk, after its events: how far the VAD has heard (VadStream.heard).
        emit_probabilities=True,
    )
    if timing.semantic is not None:
        config.turn_detection.completion_threshold = timing.semantic.completion_threshold
        config.turn_detection.max_wait_ms = timing.semantic.max_wait_ms
    return config


class VadListener(Protocol):
    def on_speech_started(self, start: int) -> None: ...

    def on_speech_ended(self, end: int) -> None: ...

    def on_turn_scored(self, end: int, scored: vad_pb2.TurnScored) -> None:
        """semantic_vad: the turn model's score of a pause (a turn_ended follows if it is complete)."""

    def on_turn_ended(self, end: int, ended: vad_pb2.TurnEnded) -> None: ...

    def on_vad_heard(self, heard: int) -> None:
        """The VAD has analysed the input up to ``heard`` and reported every event before it."""

    def on_vad_lost(self, message: str, status: str, first: bool) -> None:
        """The stream failed (``first``: the first failure of an outage); it is reopened with backoff."""


class VadStream:
    """Events come with session offsets; ``heard`` is the input offset the VAD has analysed up
    to, set before each event is passed on. Turn-taking decisions that wait for "this much
    audio without an event" count in it, not in arrived input or wall time: under load the VAD
    runs behind the input, and a decision by arrival would miss an event still to come."""

    def __init__(
        self,
        services: ModelServices,
        config: vad_pb2.DetectConfig,
        input_total: Callable[[], int],
        listener: VadListener,
        session_id: str,
    ) -> None:
        self._services = services
        self._config = config
        self._input_total = input_total
        self._listener = listener
        self._session_id = session_id
        self._queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=_QUEUE_CHUNKS)
        self._down = False
        self.heard = input_total()
        self._task = asyncio.create_task(self._run())

    @property
    def config(self) -> vad_pb2.DetectConfig:
        return self._config

    def push(self, pcm16: bytes) -> None:
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(pcm16)

    def close(self) -> None:
        self._task.cancel()

    async def _run(self) -> None:
        failures = 0
        while True:
            await self._services.ensure_ready("vad")
            call = self._services.vad.Detect()
            while not self._queue.empty():
                self._queue.get_nowait()
            base = self._input_total()
            self.heard = base  # what came before is not analysed now; nothing more is said of it
            writer = asyncio.create_task(self._feed(call))
            try:
                async for response in call:
                    kind = response.WhichOneof("event")
                    if kind != "ready":
                        self.heard = base + response.processed_samples
                    if kind == "ready":
                        failures = 0
                        if self._down:
                            self._down = False
                            log.info("vad stream back", extra={"session": self._session_id})
                    elif kind == "speech_started":
                        self._listener.on_speech_started(base + response.speech_started.start_offset_samples)
                    elif kind == "speech_ended":
                        self._listener.on_speech_ended(base + response.speech_ended.end_offset_samples)
                    elif kind == "turn_scored":
                        self._listener.on_turn_scored(
                            base + response.turn_scored.end_offset_samples, response.turn_scored
                        )
                    elif kind == "turn_ended":
                        self._listener.on_turn_ended(base + response.turn_ended.end_offset_samples, response.turn_ended)
                    elif kind == "probabilities":  # the chunk's events have come: progress
                        self._listener.on_vad_heard(self.heard)
                self._lost("the stream ended", "UNAVAILABLE")  # a draining server ends streams
            except grpc.aio.AioRpcError as exc:
                self._lost(ServiceFailure("vad", exc).client_message, exc.code().name)
            finally:
                writer.cancel()
                call.cancel()
            failures += 1
            await asyncio.sleep(min(3.0, 0.25 * 2 ** (failures - 1)))  # reconnect backoff

    def _lost(self, message: str, status: str) -> None:
        first = not self._down
        self._down = True
        if first:
            log.warning("vad stream failed", extra={"session": self._session_id, "status": status})
        self._listener.on_vad_lost(message, status, first)

    async def _feed(self, call: Any) -> None:
        with contextlib.suppress(grpc.aio.AioRpcError, asyncio.InvalidStateError):
            await call.write(vad_pb2.DetectRequest(config=self._config))
            pending = bytearray()
            while True:
                pending += await self._queue.get()
                whole = len(pending) // _CHUNK_BYTES * _CHUNK_BYTES
                if whole:
                    await call.write(vad_pb2.DetectRequest(audio=audio_pb2.AudioChunk(pcm16=bytes(pending[:whole]))))
                    del pending[:whole]
