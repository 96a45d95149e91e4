"""Cuts streamed text into the pieces that are synthesised one at a time.

Text arrives a token at a time. A piece is cut at the end of a sentence, at a line break, at
clause punctuation (early in a stream, or once a piece is long), or at a word boundary when it
reaches a length cap. The first piece of a stream is kept short on purpose: its audio is what
the listener waits for. Later pieces are synthesised while earlier ones play, so they may grow
(each up to GROWTH times all the text before it, so the next piece's text has time to arrive and
be synthesised before the audio already sent runs out) until they are whole sentences with
natural prosody.

Pure logic over strings, tested without a model.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SENTENCE_ENDS = ".!?…"
CLAUSE_ENDS = ",;:—"
# Characters that may follow sentence punctuation and belong with it ("He said 'no.'").
_CLOSERS = "\"')]}”’»*_" + SENTENCE_ENDS
# A full stop after these does not end a sentence when a name follows ("Dr. Smith").
_TITLES = frozenset(("mr", "mrs", "ms", "dr", "prof", "st", "mt", "sr", "jr", "capt", "gen", "sgt", "rev"))
# Nor after these, whatever follows ("e.g. Paris").
_NEVER_FINAL = frozenset(("e.g", "i.e", "vs", "cf", "a.k.a", "approx", "incl", "no", "nr", "fig", "ca"))
_FENCES = ("```", "~~~")
# A piece may be this many times as long as all the text before it. Text streams in some ten times
# faster than it is spoken, so a piece four times as long as what is already playing arrives and
# is synthesised with time to spare.
GROWTH = 4


@dataclass(frozen=True)
class SegmentLimits:
    """Where pieces are cut, in characters."""

    first_max_chars: int = 40
    """The first piece is cut at a word boundary beyond this, even without punctuation."""
    clause_min_chars: int = 60
    """Once this much text has gone out, pieces are cut at clause punctuation only when this long."""
    max_chars: int = 300
    """No piece is longer; also bounds how much text waits here for a boundary."""

    def cap(self, chars_out: int) -> int:
        """Longest piece after ``chars_out`` characters have gone out in earlier pieces."""
        return min(self.max_chars, max(self.first_max_chars, GROWTH * chars_out))

    def clause_min(self, chars_out: int) -> int:
        """Shortest piece cut at clause punctuation: any at first, then up to ``clause_min_chars``."""
        return min(self.clause_min_chars, chars_out)


@dataclass(frozen=True)
class Segment:
    """A piece of text as received (surrounding whitespace removed)."""

    text: str
    code: bool = False
    """Part of a fenced code block: shown to the reader, announced rather than read aloud."""
    opens_code_block: bool = False
    """The first piece of a code block (the one that is announced)."""


class _Wait(Exception):
    """The boundary cannot be decided until more text arrives."""


class TextSegmenter:
    """``push()`` text as it arrives and get the pieces it completes; ``finish()`` at the end."""

    def __init__(self, limits: SegmentLimits | None = None) -> None:
        self.limits = limits or SegmentLimits()
        self._buffer = ""
        self._chars_out = 0  # text that has gone out in pieces
        self._fence: str | None = None  # the marker of the code block we are in
        self._fence_opened_here = False  # the buffer starts with that block's opening line

    @property
    def buffered_chars(self) -> int:
        """Text received but not yet part of a piece."""
        return len(self._buffer)

    def push(self, text: str) -> list[Segment]:
        self._buffer += text
        return self._drain(final=False)

    def finish(self) -> list[Segment]:
        """No more text: return everything still buffered as pieces."""
        segments = self._drain(final=True)
        if self._buffer.strip():
            segments.append(self._take(len(self._buffer), code=self._fence is not None))
        self._buffer, self._fence = "", None
        return segments

    def _drain(self, final: bool) -> list[Segment]:
        segments: list[Segment] = []
        while True:
            segment = self._next_code(final) if self._fence is not None else self._next_text(final)
            if segment is None:
                return segments
            if segment.text:
                segments.append(segment)

    def _take(self, end: int, code: bool = False) -> Segment:
        text, self._buffer = self._buffer[:end].strip(), self._buffer[end:]
        self._chars_out += len(text)
        opens = code and self._fence_opened_here
        if code:
            self._fence_opened_here = False
        return Segment(text, code, opens)

    # --- prose ------------------------------------------------------------------------------

    def _next_text(self, final: bool) -> Segment | None:
        buffer = self._buffer
        limit = self.limits.cap(self._chars_out)
        clause_min = self.limits.clause_min(self._chars_out)
        in_code_span = False
        for i, ch in enumerate(buffer):
            if i >= limit:
                return self._take(self._word_boundary(buffer, limit))
            line_start = i == 0 or buffer[i - 1] == "\n"
            if line_start and ch in "`~":
                if buffer.startswith(_FENCES, i):
                    if _has_words(buffer[:i]):
                        return self._take(i)
                    self._fence, self._fence_opened_here = buffer[i : i + 3], True
                    self._buffer = buffer[i:]
                    return Segment("")  # go on in code mode
                if not final and len(buffer) - i < 3 and (buffer[i:] * 3)[:3] in _FENCES:
                    return None  # maybe the start of a fence
            if ch == "`":
                in_code_span = not in_code_span
                continue
            if in_code_span:
                continue
            if ch == "\n":
                if _has_words(buffer[:i]):
                    return self._take(i + 1)
                continue
            if ch in SENTENCE_ENDS or (ch in CLAUSE_ENDS and i >= clause_min):
                try:
                    end = self._boundary_end(buffer, i, final)
                except _Wait:
                    return None
                if end is not None and _has_words(buffer[:end]):
                    return self._take(end)
        return None

    def _boundary_end(self, buffer: str, i: int, final: bool) -> int | None:
        """Where a piece ending with the punctuation at ``i`` ends, or None if it does not end there."""
        ch = buffer[i]
        if ch == "—":
            return i + 1
        end = i + 1
        while end < len(buffer) and buffer[end] in _CLOSERS:
            end += 1
        if end == len(buffer):
            if final:
                return end
            # Commas, question and exclamation marks right after a word rarely mean anything
            # else, so they need not wait for the next token; a full stop might be "3." of
            # "3.5" or "example." of "example.com".
            if end == i + 1 and ch in ",;!?" and i > 0 and buffer[i - 1].isalpha():
                return end
            raise _Wait
        if not buffer[end].isspace():
            return None  # "3.5", "a,b", "e.g"
        if ch in CLAUSE_ENDS:
            return end
        word = re.split(r"[\s(\"'“‘]", buffer[:i])[-1]
        if ch == "." and (word.lower() in _NEVER_FINAL or buffer[:i].strip().lstrip("#*-> ").isdigit()):
            return None  # "e.g. Paris", a numbered list's "1."
        next_word = buffer[end:].lstrip(" \t")
        if not next_word:
            if final:
                return end
            raise _Wait
        if next_word[0].islower() or (ch == "." and next_word[0].isdigit()):
            return None  # "approx. five", "p.m. tomorrow", '"Stop!" she said'
        if ch == "." and (word.lower() in _TITLES or (len(word) == 1 and word.isupper())):
            return None  # "Dr. Smith", "J. Smith"
        return end

    @staticmethod
    def _word_boundary(buffer: str, limit: int) -> int:
        """The end of the last whole word within ``limit`` characters (all of them if none)."""
        cut = max(buffer.rfind(" ", 0, limit + 1), buffer.rfind("\n", 0, limit + 1))
        return cut + 1 if cut > 0 else limit

    # --- fenced code ------------------------------------------------------------------------

    def _next_code(self, final: bool) -> Segment | None:
        assert self._fence is not None
        buffer = self._buffer
        start = 0
        if self._fence_opened_here:
            start = buffer.find("\n")
            if start < 0:
                return self._cap_code(final)
        closing = re.compile(rf"(?:^|\n)[ \t]*{re.escape(self._fence)}[^\n]*(\n)?")
        match = closing.search(buffer, start)
        if match and (match[1] or final) and match.end() <= max(self.limits.max_chars, start + 1):
            self._fence = None
            return self._take(match.end(), code=True)
        return self._cap_code(final)

    def _cap_code(self, final: bool) -> Segment | None:
        """A code block longer than the cap goes out in pieces, cut at line ends."""
        buffer = self._buffer
        if len(buffer) <= self.limits.max_chars:
            return None
        cut = buffer.rfind("\n", 0, self.limits.max_chars)
        end = cut + 1 if cut > 0 else self.limits.max_chars
        return self._take(end, code=True)


def _has_words(text: str) -> bool:
    return any(ch.isalnum() for ch in text)
