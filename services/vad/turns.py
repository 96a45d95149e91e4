"""Semantic end of turn: follows one stream's speech events and decides when the turn is over.

A turn opens with speech and may hold several speech segments. At each pause (a SpeechEnd
after the stream's min_silence) the turn is scored by the turn model; a score at or above the
threshold ends it; below it the turn waits for more speech, and a silence of max_wait ends it
whatever the model said. Pure logic over sample offsets: the caller runs the model and keeps
the audio, so this is tested without a model or a clock.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class TurnConfig:
    completion_threshold: float
    max_wait_samples: int


class TurnEndReason(enum.Enum):
    COMPLETE = enum.auto()
    MAX_WAIT = enum.auto()
    STREAM_END = enum.auto()


@dataclass(frozen=True)
class TurnEnd:
    start: int
    end: int
    reason: TurnEndReason
    probability: float
    scorings: int


class _State(enum.Enum):
    IDLE = enum.auto()  # no turn open
    SPEAKING = enum.auto()
    PAUSED = enum.auto()  # a pause waits for its score
    WAITING = enum.auto()  # scored unfinished: waiting for more speech or max_wait


class TurnTracker:
    def __init__(self, config: TurnConfig) -> None:
        self.config = config
        self._state = _State.IDLE
        self._start = 0
        self._end = 0
        self._probability = 0.0
        self._scorings = 0

    @property
    def turn_start(self) -> int | None:
        """Where the open turn's first speech begins (None between turns)."""
        return None if self._state is _State.IDLE else self._start

    def speech_started(self, start: int) -> None:
        if self._state is _State.IDLE:
            self._start = start
            self._probability = 0.0
            self._scorings = 0
        self._state = _State.SPEAKING

    def speech_ended(self, end: int) -> None:
        """A pause: the caller scores the turn's audio up to now and calls ``scored``."""
        if self._state is _State.SPEAKING:
            self._end = end
            self._state = _State.PAUSED

    def scored(self, probability: float) -> TurnEnd | None:
        """The pause's score: the turn ends now if it is high enough."""
        if self._state is not _State.PAUSED:
            return None
        self._probability = probability
        self._scorings += 1
        if probability >= self.config.completion_threshold:
            return self._finish(TurnEndReason.COMPLETE)
        self._state = _State.WAITING
        return None

    def silence_until(self, position: int) -> TurnEnd | None:
        """Audio up to ``position`` was analysed without new speech: end a turn that waited long enough."""
        if self._state is _State.WAITING and position - self._end >= self.config.max_wait_samples:
            return self._finish(TurnEndReason.MAX_WAIT)
        return None

    def finish(self, stream_end: int) -> TurnEnd | None:
        """The stream ended: close an open turn."""
        if self._state is _State.IDLE:
            return None
        if self._state is _State.SPEAKING:
            self._end = stream_end
        return self._finish(TurnEndReason.STREAM_END)

    def _finish(self, reason: TurnEndReason) -> TurnEnd:
        self._state = _State.IDLE
        return TurnEnd(self._start, self._end, reason, self._probability, self._scorings)


class RecentAudio:
    """The last ``capacity`` samples of a stream, addressed by stream offsets."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._samples = np.empty(0, dtype=np.float32)
        self._first = 0  # stream offset of self._samples[0]

    @property
    def end(self) -> int:
        return self._first + len(self._samples)

    def append(self, samples: np.ndarray) -> None:
        self._samples = np.concatenate((self._samples, samples))
        # Trim in steps of half the capacity, so appending costs one copy per chunk on average.
        excess = len(self._samples) - self.capacity
        if excess > self.capacity // 2:
            self._samples = self._samples[excess:]
            self._first += excess

    def since(self, start: int, end: int) -> np.ndarray:
        """Samples from ``start`` to ``end``, limited to the last ``capacity`` before ``end``."""
        start = max(start, end - self.capacity, self._first)
        return self._samples[start - self._first : end - self._first]
