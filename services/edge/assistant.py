"""The assistant's side of a session: its replies, their voice and what the user heard of them.

At most one reply is being *made* (the response under way); its voice, or the previous reply's
still playing out, is the one *speaking*; with ``interrupt_response`` false a reply to speech
over the assistant *waits* until the one speaking has been heard out. A reply is cut to what
was heard when the user barges in or the client truncates it.
"""

from __future__ import annotations

import base64
import logging
from typing import TYPE_CHECKING

import grpc
from openai.types import realtime as rt
from parley.v1 import conversation_pb2

from services.edge import clock, events, metrics, protocol
from services.edge.modes import AgentState
from services.edge.protocol import ProtocolError
from services.edge.reply import Reply, cancel_and_wait, wait_for_end

if TYPE_CHECKING:
    from services.edge.session import Session

log = logging.getLogger(__name__)

_KEEP_REPLIES = 32  # replies a client may still truncate


class Assistant:
    def __init__(self, session: Session) -> None:
        self._session = session
        self.making: Reply | None = None  # the reply producing the current response
        self.speaking: Reply | None = None  # the reply whose voice is playing (or paused)
        self.waiting: Reply | None = None  # kept back until the one speaking has been heard out
        self.paused = False  # its voice is paused: the user speaks over it
        self.voice_ended_at = float("-inf")  # when the last reply's voice finished playing
        self._replies: dict[str, Reply] = {}  # assistant item id -> reply, for conversation.item.truncate
        self._last_played: tuple[str, str] | None = None  # (response id, item id) of the audio last in the output
        self._started_response: str | None = None  # the response output_audio_buffer.started was sent for

    @property
    def state(self) -> AgentState:
        if self.paused:
            return AgentState.PAUSED
        reply = self.speaking or self.making
        if reply is None:
            return AgentState.LISTENING
        return AgentState.SPEAKING if reply.audio_samples else AgentState.THINKING

    def start(self, reply: Reply) -> None:
        """``reply`` is the response now: its events go out, its voice plays."""
        session = self._session
        session.voice.cancel_idle_timeout()
        self.making = self.speaking = reply
        self._replies[reply.item_id] = reply
        while len(self._replies) > _KEEP_REPLIES:
            del self._replies[next(iter(self._replies))]
        if not reply.options.out_of_band:
            session.last_item_id = reply.item_id
        session.spawn(self._follow(reply))

    async def _follow(self, reply: Reply) -> None:
        """After a response: metrics, output_audio_buffer.stopped, then what comes next (a reply
        kept waiting, listening again)."""
        session = self._session
        await wait_for_end(reply)
        if self.making is reply:
            self.making = None
        _observe(reply, session)
        output = session.output
        assert output is not None
        if reply.audio_samples:
            await output.drained()
            if self.speaking is reply:
                self.speaking = None
                self.voice_ended_at = clock.now()
            if session.transport == "webrtc" and reply.heard is None:
                session.emit(events.make(events.OutputAudioBufferStopped, response_id=reply.response_id))
        elif self.speaking is reply:
            self.speaking = None
        await session.voice.reply_over(reply)
        waiting = self.waiting
        if waiting is not None and self.making is None and self.speaking is None:
            self.waiting = None  # the reply it waited for has been heard out: its turn now
            self.start(waiting)
            waiting.release()
        elif reply.replied and self.making is None:
            session.voice.silence_after(reply)

    def pause_voice(self) -> None:
        assert self._session.output is not None
        self.paused = True
        self._session.output.pause()

    def resume_voice(self) -> None:
        assert self._session.output is not None
        self.paused = False
        self._session.output.resume()

    def interrupt(self) -> None:
        """A barge-in: stop the replies for good, each cut to what was heard of it."""
        session = self._session
        assert session.output is not None
        interrupted = self.speaking or self.making
        for reply in {self.speaking, self.making}:
            if reply is not None:
                self.stop(reply, reply.heard_samples(), "turn_detected")
        session.output.clear()
        self.paused = False
        if interrupted is not None:
            metrics.BARGE_INS.inc()
            log.info("barge-in", extra={"session": session.session_id, "turn": interrupted.turn_id})

    def stop(self, reply: Reply, heard_samples: int, reason: events.CancelReason) -> None:
        """Cut ``reply`` to its first ``heard_samples`` of audio: cancel it if it still runs, tell
        the client, and have the LLM keep only the heard part."""
        session = self._session
        assert session.output is not None
        text = reply.truncate(heard_samples)
        reply.cancel(reason)
        if session.transport == "webrtc" and self.speaking is reply:  # the API's buffer events are WebRTC's
            session.emit(events.make(events.OutputAudioBufferCleared, response_id=reply.response_id))
        session.emit(
            events.make(
                events.ConversationItemTruncated,
                item_id=reply.item_id,
                content_index=0,
                audio_end_ms=heard_samples * 1000 // session.output.sample_rate,
                parley={"transcript": text},
            )
        )
        session.voice.carry_cut(reply.turn_id, text)

    def cancel(self, event: protocol.ResponseCancel) -> None:
        """response.cancel."""
        reply = self.making
        if reply is None or (event.response_id and event.response_id != reply.response_id):
            raise ProtocolError("response_cancel_not_active", "there is no active response to cancel", event.event_id)
        reply.cancel()

    def truncate(self, event: protocol.ConversationItemTruncate) -> None:
        """conversation.item.truncate: the client says how much of a reply its user heard."""
        session = self._session
        assert session.output is not None
        reply = self._replies.get(event.item_id)
        if reply is None:
            raise ProtocolError(
                "item_not_found", f"no assistant item {event.item_id!r} to truncate", event.event_id, "item_id"
            )
        if event.content_index != 0:
            raise ProtocolError("invalid_value", "content_index must be 0", event.event_id, "content_index")
        # A client's playback position may run a little past the audio (its own rounding, a
        # clock): the cut is at most the whole item.
        samples = min(event.audio_end_ms * session.output.sample_rate // 1000, reply.audio_samples)
        if self.speaking is reply:
            session.output.clear()
        self.stop(reply, samples, "client_cancelled")
        if not session.voice.carries_cut():  # no turn to carry the cut: tell the LLM directly
            session.spawn(self._truncate_in_llm(reply))

    async def _truncate_in_llm(self, reply: Reply) -> None:
        """Between turns nothing carries the cut: call TruncateReply once the reply has wound up."""
        session = self._session
        await wait_for_end(reply)
        try:
            assert session.services.llm is not None  # only admitted sessions have replies
            await session.services.llm.TruncateReply(
                conversation_pb2.TruncateReplyRequest(
                    session_id=session.session_id, turn_id=reply.turn_id, heard_text=reply.spoken_text
                ),
                timeout=5,
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.NOT_FOUND:  # a reply the LLM never kept needs no cut
                log.warning("truncate failed", extra={"session": session.session_id, "status": exc.code().name})

    def clear_output(self) -> None:
        """output_audio_buffer.clear."""
        session = self._session
        assert session.output is not None
        session.output.clear()
        playing = self.playing()
        if playing is not None:  # nothing was ever played: there is nothing to clear
            session.emit(events.make(events.OutputAudioBufferCleared, response_id=playing[0]))

    def playing(self) -> tuple[str, str] | None:
        """(response id, item id) of the reply whose audio is in the output now, or was last."""
        reply = self.speaking or self.making
        if reply is not None:
            self._last_played = (reply.response_id, reply.item_id)
        return self._last_played

    def send_audio_delta(self, pcm16: bytes) -> None:
        """Assistant audio as a ``response.output_audio.delta`` event (WebSocket transport)."""
        playing = self.playing()
        if playing is None:
            return  # audio comes from a reply, so this does not happen
        response_id, item_id = playing
        self._session.emit(
            events.make(
                rt.ResponseAudioDeltaEvent,
                response_id=response_id,
                item_id=item_id,
                output_index=0,
                content_index=0,
                delta=base64.b64encode(pcm16).decode("ascii"),
            )
        )

    def on_output_started(self) -> None:
        """The outgoing track began playing (WebRTC): once a response, though the track may run
        dry between pieces of speech."""
        playing = self.playing()
        if playing is None or playing[0] == self._started_response:
            return
        response_id = self._started_response = playing[0]
        self._session.emit(events.make(events.OutputAudioBufferStarted, response_id=response_id))

    async def close(self) -> None:
        if self.waiting is not None:
            self.waiting.discard()
        await cancel_and_wait(self.making)


def _observe(reply: Reply, session: Session) -> None:
    """A finished reply's metrics and log line."""
    if reply.replied:
        metrics.TURNS.labels(mode=session.mode.name, status=reply.status).inc()
    timings = reply.timings.as_ms()
    if "voice_to_voice" in timings:
        metrics.VOICE_TO_VOICE.observe(timings["voice_to_voice"] / 1000)
    for stage in ("end_of_speech_wait", "llm_asr", "llm_first_token", "text_to_first_audio"):
        if stage in timings:
            metrics.STAGE_SECONDS.labels(stage=stage).observe(timings[stage] / 1000)
    log.info(
        "turn done", extra={"session": session.session_id, "turn": reply.turn_id, "status": reply.status, **timings}
    )
