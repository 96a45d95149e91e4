"""A labelled speech recognition set made at test time: short questions and requests in the
bundled Piper voice and espeak-ng, clean and with white noise at 25 dB SNR, and word error rate.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from tests.support.speech import VOICE_RATE, VOICES, rms_of
from tests.support.transcribe import spoken_words, word_errors

RATE = VOICE_RATE
NOISE_SNR_DB = 25.0
LEAD_SILENCE_S = 0.2  # what a turn's audio holds before and after the words
TRAIL_SILENCE_S = 0.5

QUESTIONS = [
    "What is the capital of France?",
    "How far away is the moon?",
    "Can you recommend a good book?",
    "What time does the library open tomorrow?",
    "Tell me a joke about penguins.",
    "How many people live in Tokyo?",
    "Please turn off the lights in the kitchen.",
    "What's the weather like in London today?",
    "Who wrote the novel Pride and Prejudice?",
    "How do I make a cup of green tea?",
    "Set a timer for ten minutes.",
    "What is the tallest mountain in the world?",
    "Remind me to call my sister tonight.",
    "How long does it take to boil an egg?",
    "Play some relaxing music please.",
    "Why is the sky blue?",
    "What is the square root of sixty four?",
    "Translate good morning into Spanish.",
    "Where is the nearest train station?",
    "How do you spell necessary?",
    "What year did the Second World War end?",
    "Can you help me plan a birthday party?",
    "Add milk and bread to my shopping list.",
    "What is the difference between a frog and a toad?",
    "How many legs does a spider have?",
    "Tell me something interesting about octopuses.",
    "What should I cook for dinner tonight?",
    "Is it going to rain this weekend?",
    "Who painted the Mona Lisa?",
    "How do I get to the airport from here?",
]


@dataclass(frozen=True)
class Clip:
    text: str
    voice: str
    noisy: bool
    audio: np.ndarray  # 16 kHz float32, the words with a little silence around them


def make_clips(voices: Iterable[str] = ("piper", "espeak"), seed: int = 11) -> list[Clip]:
    """Every question in every voice, clean and noisy (noise seeded: the set is the same each run)."""
    rng = np.random.default_rng(seed)
    lead, trail = np.zeros(int(RATE * LEAD_SILENCE_S), np.float32), np.zeros(int(RATE * TRAIL_SILENCE_S), np.float32)
    clips = []
    for voice in voices:
        for text in QUESTIONS:
            words = VOICES[voice](text)
            clean = np.concatenate((lead, words, trail))
            noise_rms = rms_of(words) / 10 ** (NOISE_SNR_DB / 20)
            noisy = clean + rng.standard_normal(len(clean)).astype(np.float32) * noise_rms
            clips.append(Clip(text, voice, False, clean))
            clips.append(Clip(text, voice, True, noisy.astype(np.float32)))
    return clips


@dataclass(frozen=True)
class Scored:
    """A recogniser over a set of clips: word errors per clip, reference words, what it misheard."""

    errors: list[int]
    words: int
    wrong: list[str]

    @property
    def rate(self) -> float:
        return sum(self.errors) / self.words


def score(clips: list[Clip], transcribe: Callable[[np.ndarray], str]) -> Scored:
    errors, words, wrong = [], 0, []
    for clip in clips:
        reference, heard = spoken_words(clip.text), transcribe(clip.audio)
        errors.append(word_errors(reference, spoken_words(heard)))
        words += len(reference)
        if errors[-1]:
            wrong.append(f"{clip.voice}{' +noise' if clip.noisy else ''}: {clip.text!r} -> {heard!r}")
    return Scored(errors, words, wrong)


WORSE_AT_5_PERCENT = 1.645  # worse_by's one-sided 5% level


def worse_by(new: Scored, old: Scored) -> float:
    """How many standard errors more word errors per clip ``new`` makes than ``old`` on the same
    clips: the matched-pairs test NIST's scoring tools compare two recognisers with (MAPSSWE, a
    clip per segment). Two equally good recognisers differ by single-word slips on a few clips
    either way; at ``WORSE_AT_5_PERCENT`` and above, ``new`` is worse beyond that at the 5% level."""
    differences = np.subtract(new.errors, old.errors)
    if not differences.any():
        return 0.0
    standard_error = differences.std(ddof=1) / np.sqrt(len(differences))
    if standard_error == 0:  # the same difference on every clip
        return float(np.copysign(np.inf, differences.mean()))
    return float(differences.mean() / standard_error)
