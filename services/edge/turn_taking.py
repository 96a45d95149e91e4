"""The user's turn and speech over the assistant, as pure decisions over input offsets.

A *turn* here is the user's: from the start of their speech to the end the turn detection
judges, pauses within it included (as in the API's ``turn_detection`` and the VAD service's
turns). Offsets are 16 kHz input samples of the session. Decisions that wait for "this much
audio without an event" count in the audio the VAD has *heard* (analysed), not in arrival or
wall time: under load the VAD runs behind the input, and a decision by the clock would miss an
event still to come. Nothing here has a clock, a task or an I/O call: the session acts on what
these return, and tests/unit/test_turn_taking.py checks them by themselves.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Literal

from services.edge.audio import INPUT_RATE
from services.edge.protocol import TurnDetection


def samples(ms: float) -> int:
    return int(ms * INPUT_RATE // 1000)


@dataclass(frozen=True)
class SemanticTurn:
    """How semantic_vad judges a pause: scored after ``pause_ms`` of silence, finished at
    ``completion_threshold``, and ended after ``max_wait_ms`` of silence whatever the score."""

    pause_ms: int
    completion_threshold: float
    max_wait_ms: int


# OpenAI's semantic_vad eagerness: how readily a pause counts as the end of the user's turn.
EAGERNESS = {
    "high": SemanticTurn(pause_ms=100, completion_threshold=0.5, max_wait_ms=1000),
    "medium": SemanticTurn(pause_ms=150, completion_threshold=0.5, max_wait_ms=2000),
    "low": SemanticTurn(pause_ms=250, completion_threshold=0.7, max_wait_ms=3000),
}
EAGERNESS["auto"] = EAGERNESS["medium"]


@dataclass(frozen=True)
class TurnTiming:
    """A session's turn detection in the terms the decisions use."""

    pause_ms: int  # the silence after which the VAD reports a pause
    silence_ms: int  # server_vad: the silence that ends the turn
    prefix_padding_ms: int  # the VAD's padding around speech
    semantic: SemanticTurn | None  # semantic_vad: the VAD service judges the pause
    speculative: bool  # answer at a tentative pause, held back until the turn ends
    barge_in_min_speech_ms: int  # speech over the assistant that makes a barge-in
    words: WordsRule | None = None  # semantic_vad: how the words' score joins the sound's (None: sound alone)

    @classmethod
    def of(
        cls,
        detection: TurnDetection,
        speculative_pause_ms: int,
        barge_in_min_speech_ms: int,
        words: bool = False,
    ) -> TurnTiming:
        """``words``: let the words' end-of-turn score join the sound's (semantic_vad, with
        early answers: the transcript of the pause comes with the held answer)."""
        semantic = EAGERNESS[detection.eagerness or "auto"] if detection.type == "semantic_vad" else None
        silence = detection.silence_duration_ms
        if semantic is not None:
            pause = semantic.pause_ms
        else:
            pause = speculative_pause_ms if 0 < speculative_pause_ms < silence else silence
        return cls(
            pause_ms=pause,
            silence_ms=silence,
            prefix_padding_ms=detection.prefix_padding_ms,
            semantic=semantic,
            speculative=speculative_pause_ms > 0,
            barge_in_min_speech_ms=barge_in_min_speech_ms,
            words=WORDS[detection.eagerness or "auto"] if semantic and words and speculative_pause_ms > 0 else None,
        )


class Phase(enum.Enum):
    IDLE = "idle"  # no turn open
    SPEAKING = "speaking"
    HELD = "held"  # a tentative pause: the answer is being made, held back until the turn ends
    WAITING = "waiting"  # semantic_vad without early answers: the VAD service decides


@dataclass(frozen=True)
class Pause:
    """What a pause in the user's speech means for their turn."""

    kind: Literal["end", "hold", "wait"]
    end: int  # the VAD's end of the speech (padded): the turn's end if this pause is it
    speech_end: int  # where the speech itself stopped: voice to voice is measured from there
    confirm_at: int | None = None  # hold: the heard offset at which the pause is the turn's end
    fallback_seconds: float | None = None  # hold: end the turn after this if no more audio is heard


class UserTurn:
    """The user's turn: opened by speech, judged at each pause, ended or resumed.

    ``pause`` says whether a pause ends the turn now (server_vad, its whole silence), holds it
    (a tentative pause: the answer starts, kept back until ``heard`` passes ``confirm_at`` or
    the VAD service ends the turn) or leaves it waiting for the VAD service (semantic_vad
    without early answers). Speech in a held or waiting turn resumes it."""

    def __init__(self, timing: TurnTiming) -> None:
        self.timing = timing
        self.phase = Phase.IDLE
        self.start = 0  # where the turn's speech began (padded)
        self.end = 0  # the last pause's end of speech
        self._confirm_at: int | None = None
        self._paused_heard = 0  # the heard offset at which the last pause was reported

    @property
    def open(self) -> bool:
        return self.phase is not Phase.IDLE

    def begin(self, start: int) -> None:
        self.phase, self.start, self._confirm_at = Phase.SPEAKING, start, None

    def speech_started(self) -> Literal["resume", "continue", "none"]:
        """Speech within the turn: a held turn resumes (its early answer is dropped), a waiting
        one continues; a speaking one (or none) is not affected."""
        if self.phase is Phase.HELD:
            self.phase, self._confirm_at = Phase.SPEAKING, None
            return "resume"
        if self.phase is Phase.WAITING:
            self.phase = Phase.SPEAKING
            return "continue"
        return "none"

    def pause(self, end: int, heard: int) -> Pause:
        """The VAD reported a pause ending the speech at ``end``, having heard up to ``heard``."""
        timing = self.timing
        # The VAD speaks after the pause: the speech stopped that long before the audio it has heard.
        speech_end = max(self.start, heard - samples(timing.pause_ms))
        self.end, self._paused_heard = end, heard
        if timing.semantic is None and timing.pause_ms >= timing.silence_ms:
            return Pause("end", end, speech_end)
        if timing.semantic is not None and not timing.speculative:
            self.phase = Phase.WAITING
            return Pause("wait", end, speech_end)
        # server_vad: the rest of the turn's silence; semantic_vad: the VAD's longest wait, a
        # fallback (its turn_ended normally comes first).
        remaining_ms = timing.semantic.max_wait_ms + 500 if timing.semantic else timing.silence_ms - timing.pause_ms
        self.phase = Phase.HELD
        self._confirm_at = heard + samples(remaining_ms)
        # If the client stops sending audio altogether, the pause still ends the turn.
        return Pause("hold", end, speech_end, self._confirm_at, remaining_ms / 1000 + 0.5)

    def confirm_within(self, ms: int) -> None:
        """A held turn ends once its silence has lasted ``ms`` after the pause (if not sooner)."""
        if self.phase is Phase.HELD and self._confirm_at is not None:
            self._confirm_at = min(self._confirm_at, self._paused_heard + samples(ms))

    def confirmed_by(self, heard: int) -> bool:
        """A held turn's silence has lasted: it ends at its pause."""
        return self.phase is Phase.HELD and self._confirm_at is not None and heard >= self._confirm_at

    def close(self) -> None:
        """The turn ended (or was dropped)."""
        self.phase, self._confirm_at = Phase.IDLE, None


class BargeIn:
    """Speech over the assistant's voice, not yet decided: the voice is paused meanwhile.

    It is a barge-in once the speech has lasted ``barge_in_min_speech_ms``, and a false
    interruption (a cough, an "mm-hm": the voice plays on) if it ends sooner. Both are one rule,
    the speech's length, read two ways: while no end is reported, from the audio heard since it
    began (the VAD reports an end only a pause after it, so that pause is added); at the
    reported end, from the end less the VAD's padding."""

    def __init__(self, timing: TurnTiming, heard_at: int) -> None:
        self.timing = timing
        self.heard_at = heard_at  # the VAD's heard offset when the speech was reported

    def lasted(self, heard: int) -> bool:
        """No end reported by ``heard``: has the speech lasted long enough?"""
        return heard - self.heard_at >= samples(self.timing.barge_in_min_speech_ms + self.timing.pause_ms)

    def too_short(self, end: int) -> bool:
        """The speech ended at ``end`` (padded): was it shorter than a barge-in?"""
        return end - samples(self.timing.prefix_padding_ms) - self.heard_at < samples(
            self.timing.barge_in_min_speech_ms
        )


@dataclass(frozen=True)
class WordsRule:
    """How the words' end-of-turn score (the LLM service's ScoreEndOfTurn over the transcript,
    its closing punctuation stripped: the probability that a sentence or the message ends right
    after them) joins the sound's (the VAD's turn model) at a semantic_vad pause.

    Measured on the labelled set heard in place (tests/integration/test_vad_turns.py, artifacts/
    turns/with_words.json; docs/benchmarks.md): finished sentences score 6.7e-3 to 0.94, most
    sentences cut at a pause below 1.4e-3, and the sound alone calls 12-13 of 16 cut ones finished.
    So the turn ends only if the words could end a sentence (``words_min``) and either the sound
    is sure (``sound_sure``) or the words are (``words_sure``). Otherwise it waits for more
    speech: words that could not end a sentence until the longest wait, the backstop whatever
    either says; words that could, but neither is sure ("unsure"), for ``unsure_wait_ms`` of
    silence after the pause (a finished question whose words and sound are both unsure is then
    answered after a second, not after the longest wait)."""

    words_min: float
    sound_sure: float
    words_sure: float
    unsure_wait_ms: int

    def verdict(self, probability: float | None) -> Literal["unfinished", "finished", "unsure"]:
        if probability is None:
            return "unsure"  # no words (nothing recognised, or no score in time): the sound decides
        if probability < self.words_min:
            return "unfinished"
        if probability >= self.words_sure:
            return "finished"
        return "unsure"

    def ends(self, sound: float, words: float | None, sound_threshold: float) -> bool:
        """Whether a pause the sound scores ``sound`` and the words ``words`` ends the turn;
        without words, the sound by its own threshold."""
        if words is None:
            return sound >= sound_threshold
        return words >= self.words_min and (sound >= self.sound_sure or words >= self.words_sure)


# Eagerness moves all four: "high" ends sooner, "low" waits for surer signs.
WORDS = {
    "high": WordsRule(words_min=2e-3, sound_sure=0.8, words_sure=0.3, unsure_wait_ms=500),
    "medium": WordsRule(words_min=5e-3, sound_sure=0.95, words_sure=0.5, unsure_wait_ms=1000),
    "low": WordsRule(words_min=1e-2, sound_sure=0.98, words_sure=0.7, unsure_wait_ms=1500),
}
WORDS["auto"] = WORDS["medium"]


@dataclass
class PauseJudgement:
    """One semantic_vad pause as the sound (the VAD's turn model) and the words (the transcript's
    score) judge it; ``decision`` joins them by the rule once both have spoken."""

    rule: WordsRule
    sound_threshold: float = 0.5  # the VAD's completion threshold: the sound alone calls the turn over at it
    paused_at: float = 0.0  # when the pause was reported (edge clock)
    sound_probability: float | None = None  # None until the VAD has scored the pause
    words_done: bool = False  # the words' score came, or will not come
    words_probability: float | None = None
    words_ms: float | None = None  # from the pause to the words' score
    sound_ms: float | None = None  # from the pause to the sound's (last) score

    def sound_scored(self, probability: float, now: float) -> None:
        self.sound_probability, self.sound_ms = probability, (now - self.paused_at) * 1000

    def words_scored(self, probability: float | None, now: float) -> None:
        """The words' score came (None: it will not)."""
        self.words_done, self.words_probability = True, probability
        if probability is not None:
            self.words_ms = (now - self.paused_at) * 1000

    def decision(self) -> Literal["end", "hold", "wait"]:
        """end: the turn is over; hold: it goes on though the sound alone would have ended it;
        wait: for the other verdict, or for more speech or the longest wait."""
        if self.sound_probability is None or not self.words_done:
            return "wait"
        if self.rule.ends(self.sound_probability, self.words_probability, self.sound_threshold):
            return "end"
        return "hold" if self.sound_probability >= self.sound_threshold else "wait"

    @property
    def unsure(self) -> bool:
        """Both have spoken, the turn goes on, and the words could end a sentence: a shorter
        silence (``rule.unsure_wait_ms``) than the longest wait ends it."""
        return (
            self.sound_probability is not None
            and self.words_probability is not None
            and self.decision() != "end"
            and self.rule.verdict(self.words_probability) == "unsure"
        )

    def report(self, backstop: bool = False) -> dict[str, object]:
        """What response.done's end_of_turn says of the words, and what decided (``backstop``:
        the silence went on, the longest wait or, with unsure words, their shorter one)."""
        verdict = self.rule.verdict(self.words_probability)
        sound_sure = (self.sound_probability or 0.0) >= self.rule.sound_sure
        if backstop:
            decided_by = "silence" if self.unsure else "longest wait"
        elif self.words_probability is None:
            decided_by = "sound"
        else:  # the words allowed it, and the sound was sure (or else the words were)
            decided_by = "sound and words" if sound_sure else "words"
        report: dict[str, object] = {"decided_by": decided_by, "words": verdict}
        if self.words_probability is not None:
            report["text_probability"] = float(f"{self.words_probability:.3g}")
        if self.words_ms is not None:
            report["words_ms"] = round(self.words_ms)
        if self.sound_ms is not None:
            report["sound_ms"] = round(self.sound_ms)
        return report
