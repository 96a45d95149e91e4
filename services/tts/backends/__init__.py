"""Speech engines behind the TTS service, one module each, all behind the small interface here.

A backend turns a piece of normalised text into audio at its voice's own sample rate, on a
worker thread; the service does segmentation, normalisation, resampling and streaming. Adding
an engine (a GPU TTS, say) means one more module with a ``SpeechVoice`` subclass and a loader
in ``services/tts/voices.py``; nothing else changes.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class VoiceInfo:
    """What ListVoices says about a voice."""

    name: str
    language: str  # BCP 47, e.g. "en-US"
    native_sample_rate: int
    backend: str


class Cancellation:
    """Cancelled from the event loop when a stream goes away; honoured by the synthesis thread.

    Backends check ``cancelled`` between steps and may register a callback that interrupts a
    step already running (onnxruntime's terminate flag, for example).
    """

    def __init__(self) -> None:
        self._cancelled = threading.Event()
        self._lock = threading.Lock()
        self._callbacks: list[Callable[[], None]] = []

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def cancel(self) -> None:
        with self._lock:
            self._cancelled.set()
            callbacks = list(self._callbacks)
        for callback in callbacks:
            callback()

    @contextmanager
    def on_cancel(self, callback: Callable[[], None]) -> Iterator[None]:
        """Call ``callback`` if the work is cancelled while inside this block (at once if already)."""
        with self._lock:
            already = self._cancelled.is_set()
            self._callbacks.append(callback)
        if already:
            callback()
        try:
            yield
        finally:
            with self._lock:
                self._callbacks.remove(callback)


class SpeechVoice(ABC):
    """One loaded voice. ``synthesize`` runs on a worker thread and must be thread-safe."""

    info: VoiceInfo

    @abstractmethod
    def synthesize(self, text: str, speed: float, cancellation: Cancellation) -> Iterator[np.ndarray]:
        """Yield float32 mono audio in [-1, 1] at ``info.native_sample_rate``, a sentence at a time.

        ``speed`` 1.0 is the voice's natural pace. Stop early, without raising, once
        ``cancellation`` is cancelled.
        """

    def close(self) -> None:  # noqa: B027 - optional hook, most voices hold nothing to release
        """Release what the voice holds (sessions, devices)."""
