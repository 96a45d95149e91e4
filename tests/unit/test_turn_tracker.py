"""TurnTracker and RecentAudio: semantic end of turn as logic over sample offsets."""

import numpy as np

from services.vad.turns import RecentAudio, TurnConfig, TurnEnd, TurnEndReason, TurnTracker

WAIT = 32000  # 2 s at 16 kHz


def tracker(threshold: float = 0.5) -> TurnTracker:
    return TurnTracker(TurnConfig(completion_threshold=threshold, max_wait_samples=WAIT))


def test_a_pause_scored_finished_ends_the_turn_at_once() -> None:
    turns = tracker()
    turns.speech_started(1000)
    turns.speech_ended(20000)
    assert turns.turn_start == 1000
    assert turns.scored(0.8) == TurnEnd(1000, 20000, TurnEndReason.COMPLETE, 0.8, 1)
    assert turns.turn_start is None
    assert turns.silence_until(10**6) is None  # nothing open any more


def test_an_unfinished_pause_waits_and_more_speech_continues_the_same_turn() -> None:
    turns = tracker()
    turns.speech_started(1000)
    turns.speech_ended(20000)
    assert turns.scored(0.2) is None
    assert turns.silence_until(20000 + WAIT - 1) is None
    turns.speech_started(30000)  # the user goes on: same turn
    assert turns.silence_until(20000 + WAIT) is None  # speaking: no wait running
    turns.speech_ended(50000)
    ended = turns.scored(0.9)
    assert ended == TurnEnd(1000, 50000, TurnEndReason.COMPLETE, 0.9, 2)


def test_an_unfinished_pause_ends_after_the_longest_wait() -> None:
    turns = tracker()
    turns.speech_started(0)
    turns.speech_ended(16000)
    assert turns.scored(0.49) is None
    assert turns.silence_until(16000 + WAIT - 512) is None
    assert turns.silence_until(16000 + WAIT) == TurnEnd(0, 16000, TurnEndReason.MAX_WAIT, 0.49, 1)


def test_the_threshold_is_inclusive_and_configurable() -> None:
    assert tracker(0.7).scored(0.9) is None  # no pause pending: a stray score is ignored
    turns = tracker(0.7)
    turns.speech_started(0)
    turns.speech_ended(100)
    assert turns.scored(0.69) is None
    turns.speech_started(200)
    turns.speech_ended(300)
    ended = turns.scored(0.7)
    assert ended is not None and ended.reason is TurnEndReason.COMPLETE


def test_the_stream_ending_closes_an_open_turn() -> None:
    turns = tracker()
    assert turns.finish(500) is None
    turns.speech_started(100)
    assert turns.finish(9000) == TurnEnd(100, 9000, TurnEndReason.STREAM_END, 0.0, 0)
    turns.speech_started(10000)
    turns.speech_ended(12000)
    turns.scored(0.1)
    assert turns.finish(15000) == TurnEnd(10000, 12000, TurnEndReason.STREAM_END, 0.1, 1)


def test_recent_audio_keeps_the_last_capacity_samples_by_stream_offset() -> None:
    recent = RecentAudio(capacity=1000)
    stream = np.arange(5000, dtype=np.float32)
    for start in range(0, 5000, 300):
        recent.append(stream[start : start + 300])
    assert recent.end == 5000
    np.testing.assert_array_equal(recent.since(4500, 5000), stream[4500:5000])
    # Asked from further back than it keeps: the last `capacity` samples before `end`.
    np.testing.assert_array_equal(recent.since(0, 5000), stream[4000:5000])
    np.testing.assert_array_equal(recent.since(0, 4800), stream[3800:4800])
