"""The user's voice: server turn detection, the user's turn, and speech over the assistant.

The VAD stream reports speech, pauses and (semantic_vad) turn ends in session offsets; the
user's turn (``turn_taking.UserTurn``) says what each one means; this class acts on it. The
user's turn has one reply, opened as their speech starts, so that recognition runs while they
talk: at a tentative pause it is held (answered, kept back), and when they go on it is replaced
by a reply carrying the whole utterance. Speech over the assistant is judged by the mode
(``modes.Mode``): echo, a barge-in, a false interruption, or (``interrupt_response`` false) the
user's next turn beside a reply that plays on.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from typing import TYPE_CHECKING, Any

from openai.types import realtime as rt
from parley.v1 import vad_pb2

from services.edge import clock, events, metrics
from services.edge.audio import INPUT_RATE
from services.edge.echo import EchoGuard
from services.edge.modes import AgentState
from services.edge.reply import Reply, cancel_and_wait
from services.edge.turn_taking import (
    BargeIn,
    PauseJudgement,
    Phase,
    TurnTiming,
    UserTurn,
    WordsRule,
    samples,
)
from services.edge.vad_stream import VadStream, detect_config

if TYPE_CHECKING:
    from services.edge.session import Session

log = logging.getLogger(__name__)

# The words' score of a pause (the held answer's transcript, scored by the LLM service as it
# begins the answer) is waited for up to this, or the sound decides alone. Not a latency budget:
# a slow machine's words are still worth waiting for, and the turn's longest wait ends it
# whatever sound and words say.
WORDS_WAIT_SECONDS = 5.0


def ms(offset: int) -> int:
    """Input samples (16 kHz) as milliseconds, as the API's audio_start_ms / audio_end_ms."""
    return offset * 1000 // INPUT_RATE


class VoiceTurns:
    """A session's server turn detection (a ``VadListener``)."""

    def __init__(self, session: Session) -> None:
        self._session = session
        self._settings = session.settings
        self.turn = UserTurn(self._timing())
        self.reply: Reply | None = None  # the user's turn's reply (held at a tentative pause)
        self.deaf = False  # half duplex: the microphone is heard as silence while the assistant answers
        self.echo = EchoGuard(correlation=self._settings.echo_correlation)
        self._vad: VadStream | None = None
        self._next_config: vad_pb2.DetectConfig | None = None  # the VAD stream's, once the turn in progress ends
        self._confirm_timer: asyncio.TimerHandle | None = None
        self._barge_in: BargeIn | None = None  # speech over the assistant, not yet decided
        self._echo_speech: int | None = None  # a speech start taken for echo, re-checked as it goes
        self._echo_checked = 0.0
        self._cut: tuple[str, str] | None = None  # (turn_id, heard_text) for the next turn to carry
        self._idle_timer: asyncio.TimerHandle | None = None  # turn_detection.idle_timeout_ms after a reply
        self._idle_reply: Reply | None = None  # the reply the last idle timeout made
        # semantic_vad with the words: the held turn's pause as sound and words judge it.
        self._judgement: PauseJudgement | None = None
        self._sound_how: dict[str, Any] | None = None  # the VAD's turn_ended, if the sound called it finished
        self._words_task: asyncio.Task[None] | None = None

    def _timing(self) -> TurnTiming:
        detection = self._session.state.turn_detection
        if detection is None:
            return TurnTiming(0, 0, 0, None, False, 0)
        settings = self._settings
        return TurnTiming.of(
            detection, settings.speculative_pause_ms, settings.barge_in_min_speech_ms, settings.semantic_words
        )

    @property
    def _open(self) -> Reply | None:
        """The reply of a turn whose user is still speaking (or whose pause the VAD judges)."""
        return self.reply if self.turn.phase in (Phase.SPEAKING, Phase.WAITING) else None

    @property
    def heard(self) -> int:
        """How far the VAD has analysed the input (all of it without a VAD)."""
        return self._vad.heard if self._vad is not None else self._session.input.total

    # The VAD stream.

    def restart(self) -> None:
        """Start (or restart, with the session's new turn detection) the VAD stream; a turn in
        progress is dropped."""
        session = self._session
        if not session.admitted:
            return  # it starts once the session is admitted
        if self._vad is not None:
            self._vad.close()
            self._vad = None
        self._next_config = None
        self._drop_turn()
        self.turn = UserTurn(self._timing())
        detection = session.state.turn_detection
        if detection is not None:
            config = detect_config(detection, self.turn.timing)
            self._vad = VadStream(session.services, config, lambda: session.input.total, self, session.session_id)

    def update(self) -> None:
        """session.update changed the turn detection. A turn in progress goes on (as LiveKit's
        ``update_options``): what the edge judges (the turn's silence, the barge-in length)
        changes at once; what the VAD stream itself is set up with (threshold, padding, the
        pause it reports, semantic scoring) changes when the turn ends, as the stream is then
        reopened with it: reopened now, it would not have heard the speech whose end it must
        report. With no turn in progress, or with detection turned off, the stream restarts now."""
        detection = self._session.state.turn_detection
        if detection is None or self._vad is None or not self.turn.open:
            self.restart()
            return
        timing = self._timing()
        config = detect_config(detection, timing)
        if config == self._vad.config:
            self.turn.timing = timing
            return
        # Until the stream is reopened, pauses come as the running stream reports them.
        running = self.turn.timing
        self.turn.timing = dataclasses.replace(timing, pause_ms=running.pause_ms, semantic=running.semantic)
        self._next_config = config
        log.info("turn detection changes after this turn", extra={"session": self._session.session_id})

    def _close_turn(self) -> None:
        """The user's turn is over (ended or dropped): turn detection set meanwhile takes effect."""
        self.turn.close()
        if self._next_config is not None and self._vad is not None:
            session = self._session
            self._vad.close()
            self.turn = UserTurn(self._timing())
            self._vad = VadStream(
                session.services, self._next_config, lambda: session.input.total, self, session.session_id
            )
        self._next_config = None

    def _drop_judgement(self) -> None:
        self._judgement = self._sound_how = None
        if self._words_task is not None:
            self._words_task.cancel()
            self._words_task = None

    def _drop_turn(self) -> None:
        self._drop_judgement()
        if self._confirm_timer is not None:
            self._confirm_timer.cancel()
        if self.reply is not None:
            if self.turn.phase is Phase.HELD:
                self.reply.discard()
            else:
                self.reply.cancel()
        self.reply = None
        self._close_turn()

    async def clear(self) -> None:
        """input_audio_buffer.clear: the turn in progress goes."""
        reply = self._open
        self._drop_turn()
        await cancel_and_wait(reply)

    async def close(self) -> None:
        if self._vad is not None:
            self._vad.close()
        self.cancel_idle_timeout()
        await self.clear()

    def push(self, pcm16: bytes, now: float) -> None:
        """Input audio (already in the session's input) for the VAD, the open turn and the echo guard."""
        if self._vad is not None:
            self._vad.push(pcm16)
        reply = self._open
        if reply is not None:
            self._send_camera_frame(reply, now)
            reply.send_audio(pcm16)
        if self._session.mode.duplex:
            # Last: a turn this opens starts with the input so far, this chunk included.
            self.echo.heard(pcm16, INPUT_RATE, now)
            self._recheck_echo(now)

    def played(self, pcm16: bytes, sample_rate: int, when: float) -> None:
        if self._session.mode.duplex:  # only full duplex listens while the assistant speaks
            self.echo.played(pcm16, sample_rate, when)

    # VadListener.

    def on_vad_heard(self, heard: int) -> None:
        """The VAD has heard up to ``heard`` with every event before it reported."""
        if self.turn.confirmed_by(heard):
            self._confirm()
        if self._barge_in is not None and self._barge_in.lasted(heard):
            self._commit_barge_in()

    def on_vad_lost(self, message: str, status: str, first: bool) -> None:
        session = self._session
        if first:  # tell the client once per outage
            metrics.SERVICE_ERRORS.labels(service="vad").inc()
            session.emit(events.error("service_unavailable", message))
        open_reply = self._open
        if open_reply is not None:  # speech in progress cannot be ended without the VAD
            open_reply.cancel()
            self.reply = None
            self._close_turn()
        if self._barge_in is not None:  # undecided: the reply plays on
            self._barge_in = None
            session.assistant.resume_voice()
        self._echo_speech = None
        if self.turn.phase is Phase.HELD:
            self._confirm()  # a tentative pause is as good an end as any now

    def on_speech_started(self, start: int) -> None:
        session = self._session
        log.debug("speech started", extra={"session": session.session_id, "start": start, "at": session.input.total})
        if self.turn.speech_started() == "resume":
            self._resume()
            return
        assistant = session.assistant
        now = clock.now()
        if session.mode.duplex and self.reply is None:
            replying = assistant.state is not AgentState.LISTENING
            echo_tail = now < assistant.voice_ended_at + self.echo.max_delay
            if (replying or echo_tail) and self.echo.is_echo(now):
                log.info("speech taken for echo", extra={"session": session.session_id, "start": start})
                metrics.ECHO_REJECTED.inc()
                self._echo_speech, self._echo_checked = start, now
                return
            if replying:
                self._speech_over_reply(start, now)
                return
        if self.deaf or self.reply is not None or assistant.making is not None:
            return
        self._hear_user(start, now)

    def on_speech_ended(self, end: int) -> None:
        """A pause of the VAD's silence: the user's turn says whether it ends the turn now, holds
        it (a tentative pause: the answer starts, kept back until the turn ends) or waits for the
        VAD service's judgement (semantic_vad)."""
        session = self._session
        log.debug("speech ended", extra={"session": session.session_id, "end": end, "at": session.input.total})
        self._echo_speech = None
        reply = self.reply
        if reply is None or self.turn.phase is not Phase.SPEAKING:
            return
        if self._barge_in is not None:
            if self._barge_in.too_short(end):
                self._false_interruption(end)
                return
            self._commit_barge_in()
        pause = self.turn.pause(end, self.heard)
        reply.user_turn_paused(session.arrival_time(pause.speech_end))
        if pause.kind == "end":
            self._end_turn(end)
        elif pause.kind == "hold":
            # Recognition, the first tokens and the first words' audio happen in the rest of the pause.
            reply.hold()
            reply.end_input()
            assert pause.fallback_seconds is not None
            self._arm_confirm_timer(pause.fallback_seconds)
            if self.turn.timing.words is not None and reply.options.score_end_of_turn:
                self._judge_words(reply, self.turn.timing.words)

    def on_turn_ended(self, end: int, ended: vad_pb2.TurnEnded) -> None:
        """The VAD service judged the user's turn over (semantic_vad)."""
        how = {
            "detection": "semantic_vad",
            "reason": vad_pb2.TurnEndReason.Name(ended.reason).removeprefix("TURN_END_REASON_").lower(),
            "probability": round(ended.probability, 3),
            "scorings": ended.scorings,
        }
        if self.turn.phase is Phase.HELD:
            judgement = self._judgement
            if judgement is not None and ended.reason == vad_pb2.TURN_END_REASON_COMPLETE:
                judgement.sound_scored(ended.probability, clock.now())
                self._sound_how = how
                self._judge()
                return
            self._confirm({**how, **judgement.report(backstop=True)} if judgement else how)
        elif self._open is not None and self._open.timings.speech_end is not None:  # it has paused
            self._end_turn(self.turn.end, how)

    def on_turn_scored(self, end: int, scored: vad_pb2.TurnScored) -> None:
        """semantic_vad: the sound's score of the pause. Unsure, the words may still end the turn."""
        judgement = self._judgement
        if judgement is not None and self.turn.phase is Phase.HELD:
            judgement.sound_scored(scored.probability, clock.now())
            if not scored.complete:  # complete: its turn_ended follows at once, and judges
                self._judge()

    # The words at a semantic pause.

    def _judge_words(self, reply: Reply, rule: WordsRule) -> None:
        """Judge the held turn's pause by its words too: the score of the transcript its answer
        was begun with, which the LLM service sends as it begins the answer."""
        semantic = self.turn.timing.semantic
        threshold = semantic.completion_threshold if semantic else 0.5
        judgement = self._judgement = PauseJudgement(rule, sound_threshold=threshold, paused_at=clock.now())
        self._sound_how = None
        self._words_task = self._session.spawn(self._score_words(reply, judgement))

    async def _score_words(self, reply: Reply, judgement: PauseJudgement) -> None:
        try:
            async with asyncio.timeout(WORDS_WAIT_SECONDS):
                judgement.words_scored(await asyncio.shield(reply.words_score), clock.now())
        except TimeoutError:
            log.info("the words' score came too late; the sound decides", extra={"session": self._session.session_id})
            judgement.words_scored(None, clock.now())
        if self._judgement is judgement:
            self._judge()

    def _judge(self) -> None:
        """Act on the held pause once sound and words have both spoken."""
        judgement = self._judgement
        if judgement is None or self.turn.phase is not Phase.HELD:
            return
        decision = judgement.decision()
        if judgement.unsure:  # neither sure: a shorter silence ends it than the longest wait
            self.turn.confirm_within(judgement.rule.unsure_wait_ms)
            if self.turn.confirmed_by(self.heard):
                self._confirm()
                return
        if decision == "wait":
            return
        report = judgement.report()
        metrics.END_OF_TURN_WORDS.labels(words=report["words"], decision=decision).inc()
        if decision == "hold":
            log.info("the words hold a turn the sound called finished", extra={"session": self._session.session_id})
            return
        how = self._sound_how or {
            "detection": "semantic_vad",
            "reason": "words",
            "probability": round(judgement.sound_probability or 0.0, 3),
        }
        self._confirm({**how, **report})

    # The user's turn.

    def _hear_user(self, start: int, now: float) -> None:
        """The user started speaking at ``start``: tell the client and open their turn."""
        session = self._session
        session.last_activity = now
        self.cancel_idle_timeout()
        item_id = events.new_id("item")
        session.emit(events.make(rt.InputAudioBufferSpeechStartedEvent, audio_start_ms=ms(start), item_id=item_id))
        self.turn.begin(start)
        self.reply = self._open_reply(item_id, start)

    def _open_reply(self, item_id: str, start: int, replaces: str = "") -> Reply:
        session = self._session
        detection = session.state.turn_detection
        options = session.options(
            item_id, respond_at_once=False, transcribe_only=bool(detection and not detection.create_response)
        )
        options.replaces_turn_id = replaces
        # semantic_vad with the words: the LLM scores them as it begins an answer held at a pause.
        options.score_end_of_turn = self.turn.timing.words is not None and session.services.limits.scores_end_of_turn
        reply = session.new_reply(options)
        if self._cut is not None:  # a reply this user spoke over: cut before it is answered
            reply.send_cut(*self._cut)
        self._send_camera_frame(reply, clock.now())
        reply.send_audio(session.input.slice(start))
        return reply

    def _send_camera_frame(self, reply: Reply, now: float) -> None:
        """Omni: the camera's newest picture goes with the user's speech, one as the turn opens,
        then one per sampling period, up to the per-turn limit."""
        session = self._session
        if not session.mode.camera or reply.images_sent >= self._settings.omni_max_frames_per_turn:
            return
        if reply.images_sent and now - reply.last_image_at < 1 / session.camera.frames_per_second:
            return
        jpeg = session.camera.fresh()
        if jpeg is None or jpeg is reply.last_image:
            return
        reply.send_image(jpeg, now)
        if session.recorder is not None:
            session.recorder.frame(jpeg)

    def _resume(self) -> None:
        """The user spoke again within the turn's silence: drop the early answer and go on with
        one reply carrying the whole utterance, which replaces the early one in the LLM's history."""
        held = self.reply
        assert held is not None and held.options.user_item_id is not None
        if self._confirm_timer is not None:
            self._confirm_timer.cancel()
        held.discard()
        self._drop_judgement()
        metrics.SPECULATIONS.labels(outcome="dropped").inc()
        self._session.last_activity = clock.now()
        self.reply = self._open_reply(held.options.user_item_id, self.turn.start, replaces=held.turn_id)
        self.reply.continue_transcript(held)  # the client has those words already

    def _arm_confirm_timer(self, seconds: float) -> None:
        """Confirm the held turn if the VAD hears nothing more for ``seconds`` (the client
        stopped sending audio); while audio is still being heard, the heard offset decides."""
        heard = self.heard

        def check() -> None:
            if self.turn.phase is not Phase.HELD:
                return
            if self.heard > heard:
                self._arm_confirm_timer(0.5)
            else:
                self._confirm()

        self._confirm_timer = asyncio.get_running_loop().call_later(seconds, check)

    def _confirm(self, how: dict[str, Any] | None = None) -> None:
        """The held turn's pause is its end: its answer goes out."""
        held = self.reply
        assert held is not None and self.turn.phase is Phase.HELD
        if self._confirm_timer is not None:
            self._confirm_timer.cancel()
        if how is None and self._judgement is not None:  # the silence went on, whatever sound and words said
            reason = "silence" if self._judgement.unsure else "max_wait"
            how = {"detection": "semantic_vad", "reason": reason, **self._judgement.report(backstop=True)}
        self._drop_judgement()
        metrics.SPECULATIONS.labels(outcome="kept").inc()
        if self._end_turn(self.turn.end, how):
            held.release()

    def commit(self) -> bool:
        """input_audio_buffer.commit with server turn detection: end the turn in progress now.
        False if there is none (the client commits its own audio)."""
        how = {"detection": "client", "reason": "commit"}
        if self.turn.phase is Phase.HELD:
            self._confirm(how)
            return True
        if self._open is not None:
            self._end_turn(self._session.input.total, how)
            return True
        return False

    def _end_turn(self, end: int, how: dict[str, Any] | None = None) -> bool:
        """End the user's turn at ``end`` and start its reply; False if the reply waits for one
        still playing."""
        session, reply = self._session, self.reply
        assert reply is not None and reply.options.user_item_id is not None
        self.reply = None
        self._close_turn()
        reply.end_input()
        detection = session.state.turn_detection
        how = how or {"detection": detection.type if detection else "server_vad", "reason": "silence"}
        reply.user_turn_ended(how)
        metrics.END_OF_TURN.labels(detection=how["detection"], reason=how["reason"]).inc()
        if session.mode.deaf_while_answering:
            self.deaf = True
        self._cut = None  # carried by this turn (or by the turn it replaced)
        item_id = reply.options.user_item_id
        session.emit(events.make(rt.InputAudioBufferSpeechStoppedEvent, audio_end_ms=ms(end), item_id=item_id))
        session.commit_voice_item(item_id)
        reply.user_item_committed()
        assistant = session.assistant
        if assistant.making is not None or assistant.speaking is not None:
            # interrupt_response false: the user spoke over a reply that plays on; this turn's
            # answer is made now but kept back until that reply has been heard out.
            reply.hold()
            assistant.waiting = reply
            return False
        assistant.start(reply)
        return True

    # Speech over the assistant.

    def _recheck_echo(self, now: float) -> None:
        """As input arrives: re-check a speech start taken for echo (the user may have started
        talking over it)."""
        if self._barge_in is None and self._echo_speech is not None and now - self._echo_checked >= 0.1:
            # Speech taken for echo goes on: is it still echo, or the user talking over it (or on
            # after the assistant stopped)? Either way the user's turn keeps half a second before now.
            self._echo_checked = now
            if self.echo.is_echo(now):
                return
            start = max(self._echo_speech, self._session.input.total - INPUT_RATE // 2)
            self._echo_speech = None
            if self._session.assistant.state is not AgentState.LISTENING:
                self._speech_over_reply(start, now)
            elif self.reply is None:
                self.on_speech_started(start)

    def _speech_over_reply(self, start: int, now: float) -> None:
        """The user speaks while the assistant does: a barge-in, or, with ``interrupt_response``
        false, their turn opens beside the reply, whose voice plays on (theirs is answered after)."""
        detection = self._session.state.turn_detection
        if detection is None or detection.interrupt_response:
            self._begin_barge_in(start, now)
        elif self.reply is None and self._session.assistant.waiting is None:
            self._hear_user(start, now)

    def _begin_barge_in(self, start: int, now: float) -> None:
        """Speech over the assistant: pause its voice now, and hear the user out."""
        session = self._session
        log.info("speech over the reply", extra={"session": session.session_id, "start": start})
        session.assistant.pause_voice()
        self._barge_in = BargeIn(self.turn.timing, self.heard)
        onset = min(start + samples(self.turn.timing.prefix_padding_ms), session.input.total)
        metrics.BARGE_IN_SECONDS.observe(max(0.0, now - session.arrival_time(onset)))
        self._hear_user(start, now)

    def _false_interruption(self, end: int) -> None:
        """The speech over the assistant ended too soon to count: play the reply on."""
        session = self._session
        self._barge_in = None
        session.assistant.resume_voice()
        reply, self.reply = self.reply, None
        self._close_turn()
        if reply is not None:
            reply.discard()
            item_id = reply.options.user_item_id
            session.emit(events.make(rt.InputAudioBufferSpeechStoppedEvent, audio_end_ms=ms(end), item_id=item_id))
            session.emit(events.make(rt.InputAudioBufferClearedEvent))
        metrics.FALSE_INTERRUPTIONS.inc()
        log.info("false interruption", extra={"session": session.session_id, "end": end})

    def _commit_barge_in(self) -> None:
        """The user is talking over the assistant: stop the reply for good, cut to what was heard."""
        self._barge_in = None
        self._session.assistant.interrupt()

    def carry_cut(self, turn_id: str, heard_text: str) -> None:
        """A reply was cut to what was heard: the user's turn in progress (or the next) carries
        the cut to the LLM, before it is answered."""
        if self._open is not None:
            self._open.send_cut(turn_id, heard_text)
        self._cut = (turn_id, heard_text)

    def carries_cut(self) -> bool:
        """Whether a turn in progress carries the cut; if not, it is forgotten here."""
        if self._open is None:
            self._cut = None
            return False
        return True

    # After a reply.

    async def reply_over(self, reply: Reply) -> None:
        """A reply ended (and its voice played out): half duplex listens again after its guard."""
        session = self._session
        if reply.audio_samples and self._settings.echo_guard_ms and session.mode.deaf_while_answering:
            await asyncio.sleep(self._settings.echo_guard_ms / 1000)  # the guard is a duration, not a race
        if session.assistant.making is None and self.reply is None:
            self.deaf = False

    def silence_after(self, reply: Reply) -> None:
        """A reply has been heard out and nothing follows: server_vad's idle_timeout_ms runs."""
        if reply is not self._idle_reply and self.reply is None:
            self._arm_idle_timeout()  # once a silence: not again after the reply the timeout made

    def _arm_idle_timeout(self) -> None:
        """Once a reply has been heard out, silence this long makes the model speak again
        (input_audio_buffer.timeout_triggered, then a response)."""
        detection = self._session.state.turn_detection
        self.cancel_idle_timeout()
        if detection is None or detection.type != "server_vad" or not detection.idle_timeout_ms:
            return
        self._idle_timer = asyncio.get_running_loop().call_later(
            detection.idle_timeout_ms / 1000, self._on_idle_timeout
        )

    def cancel_idle_timeout(self) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None

    def _on_idle_timeout(self) -> None:
        session, assistant = self._session, self._session.assistant
        self._idle_timer = None
        if session.closed.is_set() or self.reply or assistant.making or assistant.waiting:
            return
        item_id = events.new_id("item")
        start, end = ms(session.commit_offset), ms(session.input.total)
        session.emit(
            events.make(rt.InputAudioBufferTimeoutTriggered, audio_start_ms=start, audio_end_ms=end, item_id=item_id)
        )
        session.commit_voice_item(item_id)
        options = session.options(None, respond_at_once=True)
        options.answer_history = True  # the silence has no words: the model goes on from the conversation
        reply = session.new_reply(options)
        reply.end_input()
        self._idle_reply = reply
        assistant.start(reply)
