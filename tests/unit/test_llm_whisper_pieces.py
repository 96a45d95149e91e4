"""Long inputs are cut for the length-following path at their quietest moment, losing nothing."""

import numpy as np

from services.llm.whisper import LONGEST_PIECE, RATE, pieces


def test_short_input_is_one_piece() -> None:
    audio = np.ones(RATE * 3, np.float32)
    assert [len(piece) for piece in pieces(audio)] == [len(audio)]


def test_long_input_is_cut_in_its_pauses_and_nothing_is_lost() -> None:
    rng = np.random.default_rng(0)
    audio = rng.uniform(-0.5, 0.5, RATE * 70).astype(np.float32)
    pauses = [LONGEST_PIECE - 2 * RATE, 2 * LONGEST_PIECE - 3 * RATE]  # where the talker breathes
    for start in pauses:
        audio[start : start + RATE // 4] = 0.0
    cut = pieces(audio)
    assert np.array_equal(np.concatenate(cut), audio)
    assert all(len(piece) <= LONGEST_PIECE for piece in cut)
    ends = np.cumsum([len(piece) for piece in cut])[:-1]
    assert len(ends) == 2
    for end, start in zip(ends, pauses, strict=True):
        assert start <= end <= start + RATE // 4
