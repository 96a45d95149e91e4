"""The user's turn and the barge-in rule by themselves: offsets in, decisions out."""

from __future__ import annotations

from services.common.words import bare_words, only_hesitation
from services.edge.protocol import TurnDetection
from services.edge.turn_taking import (
    EAGERNESS,
    WORDS,
    BargeIn,
    PauseJudgement,
    Phase,
    TurnTiming,
    UserTurn,
    samples,
)

SERVER_VAD = TurnDetection(type="server_vad", silence_duration_ms=500, prefix_padding_ms=300)
SEMANTIC = TurnDetection(type="semantic_vad")


def _timing(detection: TurnDetection = SERVER_VAD, speculative_ms: int = 200) -> TurnTiming:
    return TurnTiming.of(detection, speculative_ms, barge_in_min_speech_ms=400)


def test_the_vad_reports_the_tentative_pause_only_when_it_is_shorter_than_the_turns_silence() -> None:
    assert _timing().pause_ms == 200
    assert _timing(speculative_ms=0).pause_ms == 500
    assert _timing(speculative_ms=800).pause_ms == 500
    assert _timing(SEMANTIC).pause_ms == EAGERNESS["medium"].pause_ms
    assert _timing(TurnDetection(type="semantic_vad", eagerness="high")).semantic == EAGERNESS["high"]


def test_server_vad_without_early_answers_ends_the_turn_at_its_pause() -> None:
    turn = UserTurn(_timing(speculative_ms=0))
    turn.begin(samples(500))
    pause = turn.pause(end=samples(2300), heard=samples(2500))
    assert pause.kind == "end"
    assert pause.speech_end == samples(2000)  # the pause is reported 500 ms after the speech stopped


def test_a_tentative_pause_holds_the_turn_until_the_rest_of_its_silence_is_heard() -> None:
    turn = UserTurn(_timing())
    turn.begin(samples(500))
    pause = turn.pause(end=samples(2300), heard=samples(2200))
    assert pause.kind == "hold" and turn.phase is Phase.HELD
    assert pause.confirm_at == samples(2500)
    assert not turn.confirmed_by(samples(2480))
    assert turn.confirmed_by(samples(2500))
    assert pause.fallback_seconds == 0.8  # the 300 ms left, and half a second for audio still on its way


def test_speech_in_a_held_turn_resumes_it() -> None:
    turn = UserTurn(_timing())
    turn.begin(samples(500))
    turn.pause(end=samples(1800), heard=samples(1700))
    assert turn.speech_started() == "resume"
    assert turn.phase is Phase.SPEAKING and turn.start == samples(500)
    assert not turn.confirmed_by(samples(10_000))  # the old pause no longer ends it


def test_semantic_vad_holds_a_pause_for_the_vads_judgement_with_its_longest_wait_as_a_fallback() -> None:
    turn = UserTurn(_timing(SEMANTIC))
    turn.begin(0)
    pause = turn.pause(end=samples(1000), heard=samples(1150))
    assert pause.kind == "hold"
    assert pause.confirm_at == samples(1150) + samples(EAGERNESS["medium"].max_wait_ms + 500)


def test_semantic_vad_without_early_answers_waits_and_speech_continues_the_turn() -> None:
    turn = UserTurn(_timing(SEMANTIC, speculative_ms=0))
    turn.begin(0)
    assert turn.pause(end=samples(1000), heard=samples(1150)).kind == "wait"
    assert turn.phase is Phase.WAITING
    assert turn.speech_started() == "continue" and turn.phase is Phase.SPEAKING


def test_speech_start_means_nothing_to_a_turn_that_is_speaking_or_closed() -> None:
    turn = UserTurn(_timing())
    assert turn.speech_started() == "none" and not turn.open
    turn.begin(0)
    assert turn.speech_started() == "none" and turn.phase is Phase.SPEAKING
    turn.close()
    assert not turn.open


def test_the_barge_in_rule_is_one_length_read_while_speaking_and_at_the_end() -> None:
    timing = _timing()  # 400 ms of speech; the VAD reports a pause 200 ms after the speech stops
    barge_in = BargeIn(timing, heard_at=samples(3000))
    assert not barge_in.lasted(samples(3000 + 599))
    assert barge_in.lasted(samples(3000 + 600))
    # At the reported end (padded by 300 ms): 399 ms of speech is too short, 400 ms is not.
    assert barge_in.too_short(samples(3000 + 399 + 300))
    assert not barge_in.too_short(samples(3000 + 400 + 300))


RULE = WORDS["auto"]


def test_the_words_verdict_by_the_measured_thresholds() -> None:
    assert RULE.verdict(1e-4) == "unfinished"  # "I'd like to book a table for"
    assert RULE.verdict(0.02) == "unsure"
    assert RULE.verdict(0.6) == "finished"  # "What is the capital of France"
    assert RULE.verdict(None) == "unsure"  # no words: the sound decides
    assert WORDS["high"].words_min < RULE.words_min < WORDS["low"].words_min


def test_the_recognisers_closing_punctuation_is_not_the_speakers() -> None:
    assert bare_words(" What is the capital of? ") == "What is the capital of"
    assert bare_words("Tell me a joke about…") == "Tell me a joke about"
    assert bare_words("7.30") == "7.30"


def test_a_hesitation_alone_is_told_from_words_that_begin_with_one() -> None:
    assert only_hesitation("Um,") and only_hesitation(" Uh, um... ") and only_hesitation("Hmm.")
    assert not only_hesitation("Um, what is the capital of France?")
    assert not only_hesitation("Mm-hmm.")  # yes
    assert not only_hesitation("Umbrella.") and not only_hesitation("") and not only_hesitation(" ... ")


def _judged(sound: float, words: float | None) -> PauseJudgement:
    judgement = PauseJudgement(RULE, sound_threshold=0.5)
    judgement.sound_probability = sound
    judgement.words_probability, judgement.words_done = words, True
    return judgement


def test_unfinished_words_hold_what_the_sound_calls_finished() -> None:
    assert _judged(0.99, 1e-4).decision() == "hold"
    assert _judged(0.99, 0.02).decision() == "end"  # words that could end, a sure sound
    assert _judged(0.99, 0.02).report()["decided_by"] == "sound and words"
    assert _judged(0.7, 0.02).decision() == "hold"  # the sound not sure enough: a shorter silence decides


def test_finished_words_end_what_the_sound_is_unsure_of() -> None:
    assert _judged(0.2, 0.6).decision() == "end"
    assert _judged(0.2, 0.6).report() == {"decided_by": "words", "words": "finished", "text_probability": 0.6}
    assert _judged(0.2, 0.02).decision() == "wait"  # a shorter silence decides


def test_unsure_words_end_the_turn_after_a_shorter_silence_unfinished_ones_after_the_longest_wait() -> None:
    assert _judged(0.2, 0.02).unsure and _judged(0.7, 0.02).unsure
    assert not _judged(0.99, 1e-4).unsure  # words that could not end a sentence: the longest wait
    assert not _judged(0.2, 0.6).unsure and not _judged(0.99, 0.02).unsure  # ended at once
    assert not _judged(0.2, None).unsure  # no words: the sound alone, as without them
    assert _judged(0.2, 0.02).report(backstop=True)["decided_by"] == "silence"
    assert _judged(0.99, 1e-4).report(backstop=True)["decided_by"] == "longest wait"
    assert WORDS["high"].unsure_wait_ms < RULE.unsure_wait_ms < WORDS["low"].unsure_wait_ms
    turn = UserTurn(TurnTiming.of(SEMANTIC, 200, 400, words=True))
    turn.begin(0)
    pause = turn.pause(16000, heard=18400)  # the pause reported 150 ms into the silence
    assert pause.kind == "hold" and pause.confirm_at is not None
    turn.confirm_within(RULE.unsure_wait_ms)
    assert not turn.confirmed_by(18400 + samples(RULE.unsure_wait_ms) - 1)
    assert turn.confirmed_by(18400 + samples(RULE.unsure_wait_ms))
    assert samples(RULE.unsure_wait_ms) < pause.confirm_at - 18400  # sooner than the longest wait


def test_without_words_the_sound_decides_by_its_own_threshold() -> None:
    assert _judged(0.6, None).decision() == "end"
    assert _judged(0.4, None).decision() == "wait"
    assert _judged(0.6, None).report()["decided_by"] == "sound"


def test_nothing_is_decided_before_both_have_spoken() -> None:
    waiting = PauseJudgement(RULE)
    waiting.sound_probability = 0.99
    assert waiting.decision() == "wait"  # the words are still coming
    waiting.words_done = True
    assert waiting.decision() == "end"  # none came: the sound decides
    assert PauseJudgement(RULE).decision() == "wait"


def test_only_semantic_vad_with_early_answers_hears_the_words() -> None:
    assert TurnTiming.of(SEMANTIC, 200, 400, words=True).words == WORDS["medium"]
    assert TurnTiming.of(SEMANTIC, 0, 400, words=True).words is None  # no held answer, no transcript at the pause
    assert TurnTiming.of(SERVER_VAD, 200, 400, words=True).words is None
    assert TurnTiming.of(SEMANTIC, 200, 400).words is None
