"""The user's words as the end-of-turn score reads them."""

from __future__ import annotations

# What a recogniser closes or separates words with.
PUNCTUATION = " .?!,;:…"


def bare_words(transcript: str) -> str:
    """The words without the punctuation the recogniser closed them with: its guess from the
    sound (Whisper closes a first part spoken alone as a finished sentence, "What is the capital
    of?"), which the language model would take for the speaker's."""
    return transcript.strip().rstrip(PUNCTUATION)


# Sounds a speaker makes while finding their words, as Whisper writes them. Not "mm-hmm", "ah"
# or "oh": those can be a whole answer ("Mm-hmm." is yes).
HESITATIONS = frozenset({"um", "umm", "uh", "uhh", "uhm", "er", "erm", "hmm", "hm"})


def only_hesitation(transcript: str) -> bool:
    """Whether the words so far are hesitation alone ("Um,", "Uh, um..."): nothing said yet, so
    no end of a turn, whatever the sound (its turn model calls the pause after "Um," finished at
    0.56-0.96, and a language model gives "Um" an end-of-sentence probability like a real
    answer's)."""
    words = [w.strip(PUNCTUATION + "-").lower() for w in transcript.split()]
    words = [w for w in words if w]
    return bool(words) and all(w in HESITATIONS for w in words)
