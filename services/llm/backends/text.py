"""Engine-independent text helpers: incremental detokenising and stop strings."""

from __future__ import annotations

from collections.abc import Callable, Sequence


class IncrementalDetokenizer:
    """Turns a growing list of token ids into text deltas, never splitting a UTF-8 character."""

    def __init__(self, decode: Callable[[list[int]], str]) -> None:
        self._decode = decode
        self._ids: list[int] = []
        self._emitted = 0

    def add(self, token_id: int) -> str:
        self._ids.append(token_id)
        text = self._decode(self._ids)
        if text.endswith("\ufffd"):  # a multi-byte character is not complete yet
            return ""
        delta, self._emitted = text[self._emitted :], len(text)
        return delta


class StopStringFilter:
    """Holds back text that might be the start of a stop string; reports when one appears."""

    def __init__(self, stop: Sequence[str]) -> None:
        self._stop = [s for s in stop if s]
        self._held = ""
        self.stopped = False

    def push(self, delta: str) -> str:
        """Text safe to emit now. After a stop string appears, ``stopped`` is set and the rest is dropped."""
        if not self._stop:
            return delta
        text = self._held + delta
        positions = [text.find(s) for s in self._stop if s in text]
        if positions:
            self.stopped = True
            self._held = ""
            return text[: min(positions)]
        hold = 0
        for stop in self._stop:
            for length in range(min(len(stop) - 1, len(text)), 0, -1):
                if text.endswith(stop[:length]):
                    hold = max(hold, length)
                    break
        self._held = text[len(text) - hold :] if hold else ""
        return text[: len(text) - hold]

    def flush(self) -> str:
        held, self._held = self._held, ""
        return held


def common_prefix_length(a: Sequence[int], b: Sequence[int]) -> int:
    limit = min(len(a), len(b))
    for index in range(limit):
        if a[index] != b[index]:
            return index
    return limit
