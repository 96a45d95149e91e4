"""The user's words as the end-of-turn score reads them."""

from __future__ import annotations


def bare_words(transcript: str) -> str:
    """The words without the punctuation the recogniser closed them with: its guess from the
    sound (Whisper closes a first part spoken alone as a finished sentence, "What is the capital
    of?"), which the language model would take for the speaker's."""
    return transcript.strip().rstrip(" .?!,;:…")
