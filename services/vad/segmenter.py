"""Turns a stream of per-window speech probabilities into speech start/end events.

Pure logic over sample counts, so it is tested without a model or a clock.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

# Below threshold - HYSTERESIS a window counts as silence; between the two it continues
# whatever was going on (as Silero's own VADIterator does), so speech that wavers around the
# threshold is not chopped into pieces.
HYSTERESIS = 0.15
MIN_NEGATIVE_THRESHOLD = 0.01


@dataclass(frozen=True)
class SegmenterConfig:
    sample_rate: int
    threshold: float
    min_silence_ms: int
    speech_pad_ms: int
    min_speech_ms: int

    def samples(self, ms: int) -> int:
        return self.sample_rate * ms // 1000


@dataclass(frozen=True)
class SpeechStart:
    start: int


@dataclass(frozen=True)
class SpeechEnd:
    start: int
    end: int


SpeechEvent = SpeechStart | SpeechEnd


class _State(enum.Enum):
    SILENCE = enum.auto()
    CANDIDATE = enum.auto()  # above threshold, not yet min_speech_ms long
    SPEECH = enum.auto()


class SpeechSegmenter:
    """Speech segmentation with hysteresis, minimum speech, minimum silence and padding."""

    def __init__(self, config: SegmenterConfig) -> None:
        self.config = config
        self._negative_threshold = max(config.threshold - HYSTERESIS, MIN_NEGATIVE_THRESHOLD)
        self._min_silence = config.samples(config.min_silence_ms)
        self._min_speech = config.samples(config.min_speech_ms)
        self._pad = config.samples(config.speech_pad_ms)
        self._state = _State.SILENCE
        self._speech_start = 0  # first sample of the first speech window (unpadded)
        self._silence_start: int | None = None
        self._previous_end = 0  # padded end of the last segment; the next start is not before it

    @property
    def in_speech(self) -> bool:
        return self._state is _State.SPEECH

    def push(self, probability: float, window_start: int, window_end: int) -> SpeechEvent | None:
        """Account for one analysed window; return the event it completes, if any."""
        if self._state is _State.SILENCE:
            if probability < self.config.threshold:
                return None
            self._state = _State.CANDIDATE
            self._speech_start = window_start
            self._silence_start = None
        if self._state is _State.CANDIDATE:
            if probability < self._negative_threshold:
                self._state = _State.SILENCE  # too short to count
                return None
            if window_end - self._speech_start < self._min_speech:
                return None
            self._state = _State.SPEECH
            return SpeechStart(self._padded_start())
        # SPEECH
        if probability >= self.config.threshold:
            self._silence_start = None
            return None
        if probability >= self._negative_threshold:
            return None
        if self._silence_start is None:
            self._silence_start = window_start
        if window_end - self._silence_start < self._min_silence:
            return None
        return self._end(min(self._silence_start + self._pad, window_end))

    def finish(self, stream_end: int) -> SpeechEnd | None:
        """The stream ended: close a segment still open at ``stream_end``."""
        if self._state is not _State.SPEECH:
            self._state = _State.SILENCE
            return None
        silence_start = self._silence_start if self._silence_start is not None else stream_end
        return self._end(min(silence_start + self._pad, stream_end))

    def _padded_start(self) -> int:
        return max(self._speech_start - self._pad, self._previous_end, 0)

    def _end(self, end: int) -> SpeechEnd:
        event = SpeechEnd(start=self._padded_start(), end=end)
        self._previous_end = end
        self._state = _State.SILENCE
        self._silence_start = None
        return event
