"""Pieces of full-duplex barge-in without a network: what was heard of a reply, and the echo guard."""

import numpy as np
import pytest

from services.edge.echo import EchoGuard
from services.edge.reply import heard_text
from tests.support.speech import speak

SEGMENTS = [("The capital of France", 0, 48000), ("is Paris, a city", 48000, 96000), ("of museums.", 96000, 120000)]


@pytest.mark.parametrize(
    ("samples", "expected"),
    [
        (0, ""),
        (24000, "The capital"),  # half of the first piece: half of its words
        (48000, "The capital of France"),
        (60000, "The capital of France is"),
        (120000, "The capital of France is Paris, a city of museums."),
        (500000, "The capital of France is Paris, a city of museums."),
    ],
)
def test_heard_text_is_the_words_played_by_then(samples: int, expected: str) -> None:
    assert heard_text(SEGMENTS, samples) == expected


RATE = 16000
BLOCK = 320  # 20 ms


def _pcm(samples: np.ndarray) -> bytes:
    return (np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes()


def _correlations(played: np.ndarray, heard: np.ndarray, from_s: float, to_s: float) -> list[float]:
    """Feed both in real-time order; the guard's verdict every 100 ms between the two times."""
    guard = EchoGuard()
    found = []
    for start in range(0, min(len(played), len(heard)) - BLOCK, BLOCK):
        now = 100.0 + (start + BLOCK) / RATE
        guard.played(_pcm(played[start : start + BLOCK]), RATE, now - BLOCK / RATE)
        guard.heard(_pcm(heard[start : start + BLOCK]), RATE, now)
        if from_s <= start / RATE < to_s and (start // BLOCK) % 5 == 0:
            found.append(guard.echo_correlation(now))
    return found


@pytest.fixture(scope="module")
def reply() -> np.ndarray:
    return speak("The capital of France is Paris, a city famous for its museums, its food and its river.", RATE)


def _later(audio: np.ndarray, seconds: float, gain: float) -> np.ndarray:
    return np.concatenate((np.zeros(int(seconds * RATE), np.float32), audio * gain))[: len(audio)]


def test_the_assistants_voice_coming_back_is_recognised_as_echo(reply: np.ndarray) -> None:
    noise = np.random.default_rng(1).standard_normal(len(reply)).astype(np.float32) * 0.002
    for delay, gain in ((0.06, 0.25), (0.25, 0.1)):  # -12 dB after 60 ms, -20 dB after 250 ms
        found = _correlations(reply, _later(reply, delay, gain) + noise, 1.0, 3.0)
        flagged = sum(c >= 0.65 for c in found)
        assert flagged >= 0.8 * len(found), (delay, gain, [round(c, 2) for c in found])


def test_the_users_own_voice_is_not_echo_even_over_the_assistant(reply: np.ndarray) -> None:
    user = speak("Wait, wait, I have another question for you about Rome.", RATE)
    heard = np.zeros(len(reply), np.float32)
    heard[RATE : RATE + len(user)] = user[: len(reply) - RATE]
    alone = _correlations(reply, heard, 1.3, 1.0 + len(user) / RATE - 0.2)
    over_echo = _correlations(reply, heard + _later(reply, 0.06, 0.25), 1.3, 1.0 + len(user) / RATE - 0.2)
    assert alone and max(alone) < 0.65, [round(c, 2) for c in alone]
    assert sum(c >= 0.65 for c in over_echo) <= len(over_echo) // 4, [round(c, 2) for c in over_echo]


def test_nothing_played_means_no_echo() -> None:
    guard = EchoGuard()
    guard.heard(_pcm(speak("Hello there.", RATE)), RATE, 101.0)
    assert guard.echo_correlation(101.0) == 0.0 and not guard.is_echo(101.0)
