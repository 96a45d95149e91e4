"""One client session: its config, input audio and voice activity stream, turn-taking and events.

A session does not know its transport. WebRTC and WebSocket handlers feed it client events
(``handle_text``) and microphone audio at 16 kHz (``push_input``), give it an ``AudioOutput``
for the assistant's voice and a ``send`` function for server events.

Turn-taking by mode:
- chat: the client commits audio (push-to-talk) or adds text and images, then asks for a
  response; nothing is detected on the server.
- half-duplex: the VAD service hears the microphone continuously. Speech opens an LLM turn at
  once (with the padding before it), so recognition runs while the user talks; the end of speech
  ends the turn's input and the reply streams into speech. The microphone is ignored (heard as
  silence) while the assistant answers and for a short guard after, so its own voice coming
  back through the speakers cannot start a turn.
- full-duplex: as half-duplex, but the microphone stays open. Speech over the assistant (unless
  the echo guard takes it for the assistant's own voice) pauses the assistant's voice at once and
  opens the user's next turn with the speech's start; if the speech goes on for
  ``barge_in_min_speech_ms`` the reply is cancelled and cut to what was heard (a barge-in), and
  if it ends sooner (a cough, a short "mm-hm") the reply plays on.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
from collections import deque
from collections.abc import Callable
from typing import Any

import grpc
from openai.types import realtime as rt
from parley.v1 import conversation_pb2, speech_pb2, vad_pb2

from services.edge import clock, events, items, metrics, protocol, tools
from services.edge.admission import Admission
from services.edge.audio import INPUT_RATE, AudioOutput, InputAudio, PcmResampler
from services.edge.config import OPENAI_VOICES, SessionState
from services.edge.conversation import Conversation
from services.edge.echo import EchoGuard
from services.edge.events import Event, ServerEvent
from services.edge.items import PendingInput, UserInput
from services.edge.models import ModelServices, ServiceFailure
from services.edge.protocol import ProtocolError
from services.edge.recording import SessionRecorder, start_recording
from services.edge.settings import EdgeSettings
from services.edge.turn import Turn, TurnOptions, cancel_and_wait, wait_for_end
from services.edge.vad_stream import VadStream, detect_config, pause_ms, semantic_turn
from services.edge.video import CameraFrames

log = logging.getLogger(__name__)

_MODES = {
    "chat": conversation_pb2.CONVERSATION_MODE_CHAT,
    "half_duplex": conversation_pb2.CONVERSATION_MODE_HALF_DUPLEX,
    "full_duplex": conversation_pb2.CONVERSATION_MODE_FULL_DUPLEX,
    "omni": conversation_pb2.CONVERSATION_MODE_OMNI,
}
_MIN_COMMIT_MS = 100


def _ms(samples: int) -> int:
    return samples * 1000 // INPUT_RATE


class Session:
    def __init__(
        self,
        session_id: str,
        transport: str,
        settings: EdgeSettings,
        services: ModelServices,
        send: Callable[[Event], None],
        model: str | None = None,
        admission: Admission | None = None,
    ) -> None:
        self.session_id = session_id
        self.transport = transport
        self._settings = settings
        self._services = services  # until admitted: without an LLM replica
        self._admission = admission
        self.admitted = admission is None
        self._send = send
        self.state = SessionState(session_id, settings, model)
        self.conversation = Conversation(events.new_id("conv"))  # the session's one conversation
        self.output: AudioOutput | None = None  # set by the transport before start()
        self._input = InputAudio(settings.max_input_buffer_seconds)
        self._arrivals: deque[tuple[int, float]] = deque(maxlen=2000)  # (input total, monotonic time)
        self._resampler_24k = PcmResampler(24000, INPUT_RATE)
        self._commit_offset = 0
        self._pending = PendingInput()  # user input waiting for response.create
        self._last_item_id: str | None = None
        self._user_turn: Turn | None = None  # a turn whose user is still speaking
        self._held_turn: Turn | None = None  # begun at a tentative pause, waiting for the turn's end
        self._confirm_at = 0  # heard offset at which the held turn's pause becomes the turn's end
        self._confirm_timer: asyncio.TimerHandle | None = None
        self._held_end = 0
        self._started_response: str | None = None  # the response output_audio_buffer.started was sent for
        self._last_played: tuple[str, str] | None = None  # (response id, item id) of the audio last in the output
        self._response_turn: Turn | None = None  # the turn producing the current response
        self._waiting_reply: Turn | None = None  # a reply kept back until the one playing ends (no interruption)
        self._idle_timer: asyncio.TimerHandle | None = None  # turn_detection.idle_timeout_ms after a reply
        self._idle_turn: Turn | None = None  # the reply the last idle timeout made
        self._listening = True
        self._vad: VadStream | None = None
        # Full duplex.
        self._echo = EchoGuard(correlation=settings.echo_correlation)
        self._speaking: Turn | None = None  # the turn whose voice is playing (or paused)
        self._echo_tail_until = 0.0  # the last reply's echo may still be coming back until then
        self._barge_in_at: int | None = None  # speech over the assistant: the VAD's heard offset then
        self._echo_speech: int | None = None  # a speech start taken for echo, re-checked as it goes
        self._echo_checked = 0.0
        self._cut: tuple[str, str] | None = None  # (turn_id, heard_text) for the next turn to carry
        self._replies: dict[str, Turn] = {}  # assistant item id -> turn, for conversation.item.truncate
        # Omni: the call's camera, sampled (fed by the WebRTC transport).
        self.camera = CameraFrames(wanted=lambda: self.state.mode == "omni")
        self._recorder: SessionRecorder | None = None
        self._queued = False  # waited in the admission queue
        self._tasks: set[asyncio.Task[Any]] = set()
        self._sent_prompt: str | None = None
        self._last_activity = clock.now()
        self.started_at = clock.now()
        self.closed = asyncio.Event()
        self._closing = False
        self.close_reason = ""

    # Lifecycle.

    def start(self) -> None:
        if self.output is not None:
            self.output.on_played = self._on_played
        refused: ProtocolError | None = None
        try:
            self._apply_recording()  # first, so that the recording has every event
        except ProtocolError as error:
            refused = error
        self.emit(events.make(rt.SessionCreatedEvent, session=self.state.to_event_object()))
        if refused is not None:
            self._client_error(refused)
        self.spawn(self._watchdog())
        replica = self._admission.try_admit(self) if self._admission is not None else None
        if replica is not None:
            self._services = self._services.pinned(replica)
            self.admitted = True
        if self.admitted:
            self._restart_vad()
        else:
            self.spawn(self._wait_for_admission())

    async def _wait_for_admission(self) -> None:
        """Get an LLM replica, waiting in line if every one is full; the session starts then."""
        assert self._admission is not None
        asked = clock.now()
        try:
            replica = await asyncio.wait_for(self._admission.admit(self), self._settings.queue_max_wait_seconds)
        except TimeoutError:
            waited = self._settings.queue_max_wait_seconds
            self.emit(events.error("queue_timeout", f"No model replica became free within {waited:.0f} s; try later."))
            await self.close("queue timeout")
            return
        self._services = self._services.pinned(replica)
        self.admitted = True
        if self._queued:
            waited = round(clock.now() - asked, 1)
            self.emit(events.make(events.QueueAdmitted, waited_seconds=waited))
        self._last_activity = clock.now()
        self._restart_vad()

    def queue_update(self, position: int, length: int, eta_seconds: float) -> None:
        """Admission: this session waits in line."""
        self._queued = True
        self.emit(events.make(events.QueueUpdated, position=position, queue_length=length, eta_seconds=eta_seconds))

    async def close(self, reason: str = "closed", error: rt.RealtimeErrorEvent | None = None) -> None:
        """End the session: cancel its calls and free what the LLM service holds for it.

        ``error`` (an error event) tells the client why first; a reply under way ends with its
        response.done, so the client's last word of it is not a dropped connection."""
        if self.closed.is_set() or self._closing:
            return
        self._closing = True
        if error is not None:
            self.emit(error)
            await cancel_and_wait(self._response_turn)
        self.close_reason = reason
        self.closed.set()
        if self._recorder is not None:
            self._recorder.close(reason)
        for task in list(self._tasks):
            if task is not asyncio.current_task():  # close() may run inside one (the watchdog)
                task.cancel()
        if self._vad is not None:
            self._vad.close()
        if self._confirm_timer is not None:
            self._confirm_timer.cancel()
        if self._held_turn is not None:
            self._held_turn.discard()
        if self._waiting_reply is not None:
            self._waiting_reply.discard()
        self._cancel_idle_timeout()
        await cancel_and_wait(self._user_turn)
        await cancel_and_wait(self._response_turn)
        if self.admitted and self._services.llm is not None:
            with contextlib.suppress(grpc.aio.AioRpcError):
                await self._services.llm.EndSession(
                    conversation_pb2.EndSessionRequest(session_id=self.session_id), timeout=2
                )
        if self._admission is not None:
            self._admission.leave(self.session_id)
        log.info("session closed", extra={"session": self.session_id, "reason": reason})

    def spawn(self, coroutine: Any) -> asyncio.Task[Any]:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def emit(self, event: ServerEvent) -> None:
        if self.closed.is_set() and not isinstance(event, rt.RealtimeErrorEvent):
            return
        self._deliver(event)

    def _deliver(self, event: ServerEvent) -> None:
        self.conversation.record(event)
        wire: Event = events.to_wire(event)
        if self._recorder is not None:
            self._recorder.event("server", wire)
        self._send(wire)

    def _client_error(self, error: ProtocolError) -> None:
        metrics.CLIENT_ERRORS.labels(code=error.code).inc()
        self._deliver(error.to_event())

    async def _watchdog(self) -> None:
        """Close the session after the idle timeout or at its maximum length."""
        idle, longest = self._settings.idle_timeout_seconds, self._settings.max_session_seconds
        while True:
            now = clock.now()
            if self._response_turn is not None or not self.admitted:
                self._last_activity = now  # the assistant speaking is activity, and so is waiting in line
            idle_left = self._last_activity + idle - now
            length_left = self.started_at + longest - now
            if idle_left <= 0 or length_left <= 0:
                code, message = (
                    ("session_idle_timeout", f"The session was idle for {idle:.0f} s and has been closed.")
                    if idle_left <= 0
                    else ("session_expired", f"The session reached its maximum length of {longest:.0f} s.")
                )
                self._deliver(events.error(code, message, kind="invalid_request_error"))
                await self.close(code)
                return
            await asyncio.sleep(min(idle_left, length_left, 5.0))

    # Input.

    def push_input(self, pcm16: bytes) -> None:
        """Microphone audio, 16 kHz PCM16. While the assistant answers in half-duplex mode it is
        heard as silence (same length, so offsets keep matching the wall clock)."""
        if self.closed.is_set() or not pcm16:
            return
        if not self._listening:
            pcm16 = bytes(len(pcm16))
        now = clock.now()
        if self._recorder is not None:
            self._recorder.user_audio(pcm16)
        self._input.append(pcm16)
        self._arrivals.append((self._input.total, now))
        if self._vad is not None:
            self._vad.push(pcm16)
        if self._user_turn is not None:
            self._send_camera_frame(self._user_turn, now)
            self._user_turn.send_audio(pcm16)
        if self._duplex:
            # Last: a turn this opens starts with the input so far, this chunk included.
            self._echo.heard(pcm16, INPUT_RATE, now)
            self._recheck_echo(now)

    def _arrival_time(self, offset: int) -> float:
        """When the input sample at ``offset`` reached the edge (monotonic)."""
        for total, when in self._arrivals:
            if total >= offset:
                return when
        return clock.now()

    async def handle_text(self, raw: str | bytes) -> None:
        """One client event as JSON text."""
        if self._recorder is not None:
            self._recorder.event("client", _as_logged(raw))
        try:
            event = protocol.parse_client_event(raw, self._settings.max_event_bytes)
            if not isinstance(event, protocol.InputAudioBufferAppend):
                # Audio is not activity by itself (a client may stream silence forever); speech is,
                # and the VAD says when there is speech.
                self._last_activity = clock.now()
            await self._dispatch(event)
        except ProtocolError as error:
            self._client_error(error)

    async def _dispatch(self, event: protocol.ClientEvent) -> None:
        event_id = event.event_id
        if isinstance(event, protocol.SessionUpdate):
            await self._update_session(event)
        elif isinstance(event, protocol.InputAudioBufferAppend):
            self.push_input(self._resampler_24k.convert(event.audio))
        elif isinstance(event, protocol.InputAudioBufferCommit):
            self._commit(event_id)
        elif isinstance(event, protocol.InputAudioBufferClear):
            self._commit_offset = self._input.total
            self._drop_held_turn()
            if self._user_turn is not None:
                await cancel_and_wait(self._user_turn)
                self._user_turn = None
            self.emit(events.make(rt.InputAudioBufferClearedEvent))
        elif isinstance(event, protocol.ConversationItemCreate):
            await self._create_item(event)
        elif isinstance(event, protocol.ResponseCreate):
            await self._create_response(event)
        elif isinstance(event, protocol.ResponseCancel):
            turn = self._response_turn
            if turn is None or (event.response_id and event.response_id != turn.response_id):
                raise ProtocolError("response_cancel_not_active", "there is no active response to cancel", event_id)
            turn.cancel()
        elif isinstance(event, protocol.ConversationItemTruncate):
            self._truncate_item(event)
        elif isinstance(event, protocol.ConversationItemDelete):
            await self._delete_item(event)
        elif isinstance(event, protocol.ConversationItemRetrieve):
            item = self.conversation.get(event.item_id)
            if item is None:
                raise ProtocolError(
                    "item_not_found", f"no item {event.item_id!r} in the conversation", event_id, "item_id"
                )
            self.emit(events.make(events.ConversationItemRetrieved, item=item))
        elif isinstance(event, protocol.OutputAudioBufferClear):
            assert self.output is not None
            self.output.clear()
            playing = self._playing()
            if playing is not None:  # nothing was ever played: there is nothing to clear
                self.emit(events.make(events.OutputAudioBufferCleared, response_id=playing[0]))
        else:
            raise ProtocolError(
                "unsupported_event", f"{event.type} is not supported by this server yet", event_id, "type"
            )

    async def _update_session(self, event: protocol.SessionUpdate) -> None:
        update = event.session.model_dump(exclude_unset=True)
        before = self.state.turn_detection
        new_config = self.state.apply(update)
        if (update.get("parley") or {}).get("record") and self._settings.record_dir is None:
            raise _no_recording(event.event_id)
        self._check_output_tokens(new_config.max_output_tokens, event.event_id, "session.max_output_tokens")
        session_tools = tools.for_turn(tools.check(new_config.tools or [], event.event_id, "session.tools"))
        tools.check_choice(session_tools, tools.choice_for_turn(new_config.tool_choice), event.event_id)
        asked, before_asked = _asked_voice(new_config), _asked_voice(self.state.config)
        tts_voice = self.state.tts_voice
        if asked != before_asked:
            tts_voice = await self._tts_voice(asked, event.event_id, "session.audio.output.voice") if asked else ""
        self.state.config = new_config
        self.state.tts_voice = tts_voice
        if self.state.turn_detection != before:
            self._restart_vad()
        fps = new_config.parley.video_frames_per_second if new_config.parley else None
        self.camera.frames_per_second = fps or 1.0
        self._apply_recording(event_id=event.event_id)
        self.emit(events.make(rt.SessionUpdatedEvent, session=self.state.to_event_object()))

    def _check_output_tokens(self, value: int | str | None, event_id: str | None, param: str) -> None:
        """A reply length the session's LLM replica allows (the API's 1-4096 is checked in parsing)."""
        limit = self._services.limits.max_output_tokens
        if isinstance(value, int) and value > limit:
            raise ProtocolError(
                "invalid_value",
                f"max_output_tokens may be at most {limit} on this server, got {value}",
                event_id,
                param,
            )

    async def _tts_voice(self, voice: str, event_id: str | None, param: str) -> str:
        """The TTS voice for the voice a client named: one of the TTS service's, or one of OpenAI's
        names, which map to ``--openai-voice`` (empty: the default voice)."""
        try:
            reply = await self._services.tts.ListVoices(speech_pb2.ListVoicesRequest(), timeout=3)
        except grpc.aio.AioRpcError as exc:
            failure = ServiceFailure("tts", exc)
            raise ProtocolError(failure.client_code, failure.client_message, event_id) from None
        names = [v.name for v in reply.voices]
        if voice in names:
            return voice
        if voice in OPENAI_VOICES:
            return self._settings.openai_voice
        raise ProtocolError(
            "invalid_value",
            f"unknown voice {voice!r}; available: {', '.join(names)}, or one of OpenAI's "
            f"({', '.join(sorted(OPENAI_VOICES))}), which this server speaks as "
            f"{self._settings.openai_voice or reply.default_voice!r}",
            event_id,
            param,
        )

    def _commit(self, event_id: str | None) -> None:
        self._require_admitted(event_id)
        ended_by_client = {"detection": "client", "reason": "commit"}
        if self._held_turn is not None:  # a tentative pause, confirmed by the client
            self._held_turn.timings.end_of_turn = ended_by_client
            self._confirm_held_turn()
            return
        if self._user_turn is not None:  # server VAD with a turn open: end it now
            self._user_turn.timings.end_of_turn = ended_by_client
            self._end_user_turn(self._input.total)
            return
        audio = self._input.slice(self._commit_offset)
        if len(audio) // 2 < INPUT_RATE * _MIN_COMMIT_MS // 1000:
            raise ProtocolError(
                "input_audio_buffer_commit_empty",
                f"buffer too small: expected at least {_MIN_COMMIT_MS} ms of audio, but the buffer has "
                f"{_ms(len(audio) // 2)} ms",
                event_id,
            )
        item_id = events.new_id("item")
        self._pending.hold([UserInput(item_id, "audio", audio)], self._services.limits, event_id)
        self._commit_offset = self._input.total
        self.emit(events.make(rt.InputAudioBufferCommittedEvent, previous_item_id=self._last_item_id, item_id=item_id))
        self._add_user_item(item_id, [events.UserContent(type="input_audio", transcript=None)])

    def _add_user_item(self, item_id: str, content: list[events.UserContent]) -> None:
        item = events.user_item(item_id, content)
        self.emit(events.make(rt.ConversationItemAdded, previous_item_id=self._last_item_id, item=item))
        self.emit(events.make(rt.ConversationItemDone, previous_item_id=self._last_item_id, item=item))
        self._last_item_id = item_id

    async def _create_item(self, event: protocol.ConversationItemCreate) -> None:
        if event.previous_item_id == "root" and self._last_item_id is None:
            event.previous_item_id = None  # the start of an empty conversation is its end
        item = event.item
        item_id = item.id or events.new_id("item")
        if item_id in self.conversation or item_id in self._pending.item_ids:
            raise ProtocolError(
                "item_exists", f"the conversation has an item {item_id!r} already", event.event_id, "item.id"
            )
        if not isinstance(item, protocol.ConversationItem) or item.role != "user":
            await self._add_message(item, item_id, event)
            return
        if event.previous_item_id not in (None, self._last_item_id):
            raise ProtocolError(
                "invalid_value",
                "a user message goes at the end of the conversation (previous_item_id: the newest item, or none; "
                "'root' only while the conversation is empty)",
                event.event_id,
                "previous_item_id",
            )
        limits = self._services.limits
        inputs, content = await items.user_content(item, item_id, event.event_id, self._pending, limits)
        self._pending.hold(inputs, self._services.limits, event.event_id)
        self._add_user_item(item_id, content)

    async def _add_message(
        self,
        item: protocol.ConversationItem | protocol.FunctionCallItem | protocol.FunctionCallOutputItem,
        item_id: str,
        event: protocol.ConversationItemCreate,
    ) -> None:
        """An assistant or system message, a function call or a function's result: into the LLM's
        history now, after the user's text that waits for a response (which goes in first, so
        the order is the client's)."""
        self._require_admitted(event.event_id)
        message, added = items.history_message(item, item_id, event.event_id)
        after = event.previous_item_id or ""
        if after == self._last_item_id:
            after = ""  # at the end
        messages = [message]
        if self._pending and not after:
            if not self._pending.texts_only():
                raise ProtocolError(
                    "unsupported_item",
                    "this item can follow typed user messages, not audio or images waiting for a response: "
                    "ask for the response first",
                    event.event_id,
                )
            waiting = [
                conversation_pb2.HistoryMessage(item_id=i.item_id, role=items.ROLES["user"], text=str(i.value))
                for i in self._pending.take()
            ]
            messages = [*waiting, *messages]
        assert self._services.llm is not None  # admitted
        try:
            await self._services.llm.AddMessages(
                conversation_pb2.AddMessagesRequest(session_id=self.session_id, messages=messages, after_item_id=after),
                timeout=5,
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                raise ProtocolError(
                    "item_not_found", f"no item {after!r} to add the message after", event.event_id, "previous_item_id"
                ) from None
            failure = ServiceFailure("llm", exc)
            raise ProtocolError(failure.client_code, failure.client_message, event.event_id) from None
        previous = event.previous_item_id or self._last_item_id
        self.emit(events.make(rt.ConversationItemAdded, previous_item_id=previous, item=added))
        self.emit(events.make(rt.ConversationItemDone, previous_item_id=previous, item=added))
        if not after:
            self._last_item_id = item_id

    async def _delete_item(self, event: protocol.ConversationItemDelete) -> None:
        """Remove an item: from what waits for a response, or from the LLM's history."""
        item_id = event.item_id
        waiting = self._pending.remove(item_id)
        if not waiting and item_id not in self.conversation:
            raise ProtocolError("item_not_found", f"no item {item_id!r} in the conversation", event.event_id, "item_id")
        if not waiting and self.admitted and self._services.llm is not None:
            try:
                await self._services.llm.DeleteMessage(
                    conversation_pb2.DeleteMessageRequest(session_id=self.session_id, item_id=item_id), timeout=5
                )
            except grpc.aio.AioRpcError as exc:
                if exc.code() != grpc.StatusCode.NOT_FOUND:  # not in the history (a reply never kept): gone already
                    failure = ServiceFailure("llm", exc)
                    raise ProtocolError(failure.client_code, failure.client_message, event.event_id) from None
        self.emit(events.make(rt.ConversationItemDeletedEvent, item_id=item_id))

    # Responses.

    def _options(self, user_item_id: str | None, respond_at_once: bool, transcribe_only: bool = False) -> TurnOptions:
        prompt = self.state.config.instructions
        system_prompt = prompt if prompt and prompt != self._sent_prompt else None
        self._sent_prompt = prompt or self._sent_prompt
        return TurnOptions(
            session_id=self.session_id,
            mode=_MODES[self.state.mode],
            modalities=self.state.modalities,
            voice=self.state.voice,
            speed=self.state.speed,
            system_prompt=system_prompt,
            max_output_tokens=self.state.max_output_tokens,
            user_item_id=user_item_id,
            respond_at_once=respond_at_once,
            transcribe_only=transcribe_only,
            conversation_id=self.conversation.id,
            live_transcripts=bool(self.state.config.parley and self.state.config.parley.live_transcripts),
            first_spoken_chars=self._settings.first_spoken_chars,
            stall_seconds=self._settings.service_stall_seconds,
            tools=tools.for_turn(self.state.config.tools),
            tool_choice=tools.choice_for_turn(self.state.config.tool_choice),
            transcription_prompt=self.state.transcription_prompt,
        )

    def _new_turn(self, options: TurnOptions) -> Turn:
        assert self.output is not None
        self._require_admitted(None)
        return Turn(self._services, options, self.output, self.emit, self._last_item_id)

    def _require_admitted(self, event_id: str | None) -> None:
        if not self.admitted:
            raise ProtocolError(
                "session_queued",
                "this session waits for a free model replica (see parley.queue.updated); it can talk once admitted",
                event_id,
            )

    async def _create_response(self, event: protocol.ResponseCreate) -> None:
        self._require_admitted(event.event_id)
        if self._response_turn is not None:
            raise ProtocolError(
                "conversation_already_has_active_response",
                f"response {self._response_turn.response_id} is still in progress; cancel it or wait for response.done",
                event.event_id,
            )
        params = event.response or protocol.ResponseParams.model_validate({})
        if params.conversation == "none":
            await self._respond_out_of_band(event, params)
            return
        # Nothing new: the model answers the conversation as it stands (a function's result, or it
        # speaks first: a greeting under the response's instructions), as the API does.
        continues = not self._pending
        if params.input is not None:
            raise ProtocolError(
                "unsupported_value",
                'a response\'s own input is for out-of-band responses (conversation: "none")',
                event.event_id,
                "response.input",
            )
        if params.conversation not in (None, "auto", self.conversation.id):
            raise ProtocolError(
                "invalid_value",
                f"conversation must be 'auto' or this session's {self.conversation.id!r}",
                event.event_id,
                "response.conversation",
            )
        options = await self._response_options(event, params, self._pending.audio_item)
        options.user_item_ids = self._pending.item_ids
        options.answer_history = continues
        turn = self._new_turn(options)
        _send_inputs(turn, self._pending.take())
        turn.end_input()
        self._start_response(turn)

    async def _response_options(
        self, event: protocol.ResponseCreate, params: protocol.ResponseParams, audio_item: str | None
    ) -> TurnOptions:
        """A response's options: the session's, with what response.create sets for it alone."""
        self._check_output_tokens(params.max_output_tokens, event.event_id, "response.max_output_tokens")
        options = self._options(audio_item, respond_at_once=True)
        options.metadata = params.metadata
        if params.tools is not None:
            options.tools = tools.for_turn(tools.check(params.tools, event.event_id, "response.tools"))
        if params.tool_choice is not None:
            options.tool_choice = tools.choice_for_turn(params.tool_choice)
        tools.check_choice(options.tools, options.tool_choice, event.event_id)
        if params.instructions is not None:
            options.instructions = params.instructions
        if params.output_modalities:
            options.modalities = list(params.output_modalities)
        if isinstance(params.max_output_tokens, int):
            options.max_output_tokens = params.max_output_tokens
        voice = params.audio.output.voice if params.audio and params.audio.output else None
        if voice is not None:
            name = voice.id if isinstance(voice, protocol.VoiceId) else voice
            options.voice = (
                await self._tts_voice(name, event.event_id, "response.audio.output.voice") or self.state.voice
            )
        return options

    async def _respond_out_of_band(self, event: protocol.ResponseCreate, params: protocol.ResponseParams) -> None:
        """response.create with conversation "none": answered from its own input items alone,
        and nothing of it (input or reply) goes into the conversation."""
        if not params.input:
            raise ProtocolError(
                "invalid_value",
                'an out-of-band response (conversation: "none") answers its own input: give response.input',
                event.event_id,
                "response.input",
            )
        context, inputs = await self._out_of_band_input(params.input, event.event_id)
        options = await self._response_options(event, params, None)
        options.conversation_id = None
        options.out_of_band = True
        turn = self._new_turn(options)
        for message in context:
            turn.send_context(message)
        _send_inputs(turn, inputs)
        turn.end_input()
        self._start_response(turn)

    async def _out_of_band_input(
        self, input_items: list[protocol.ConversationItem], event_id: str | None
    ) -> tuple[list[conversation_pb2.HistoryMessage], list[UserInput]]:
        """An out-of-band response's items: the last user message is the turn's input, the
        messages before it its context."""
        last_user = max((i for i, item in enumerate(input_items) if item.role == "user"), default=None)
        if last_user is None:
            raise ProtocolError(
                "invalid_value", "response.input needs a user message to answer", event_id, "response.input"
            )
        context = []
        for item in input_items[:last_user]:
            if item.role == "user":
                text = "\n".join(p.text or "" for p in item.content if p.type in ("input_text", "text"))
            else:
                text = items.message_text(item, event_id)
            context.append(conversation_pb2.HistoryMessage(role=items.ROLES[item.role], text=text))
        room = PendingInput()  # the same limits as a response's waiting input
        limits = self._services.limits
        inputs, _ = await items.user_content(input_items[last_user], events.new_id("item"), event_id, room, limits)
        room.hold(inputs, limits, event_id)
        return context, inputs

    def _start_response(self, turn: Turn) -> None:
        self._cancel_idle_timeout()
        self._response_turn = turn
        self._speaking = turn
        self._replies[turn.item_id] = turn
        while len(self._replies) > 32:
            del self._replies[next(iter(self._replies))]
        if not turn.options.out_of_band:
            self._last_item_id = turn.item_id
        self.spawn(self._follow(turn))

    async def _follow(self, turn: Turn) -> None:
        """After a response: metrics, output_audio_buffer.stopped, and listening again."""
        await wait_for_end(turn)
        if self._response_turn is turn:
            self._response_turn = None
        if turn.replied:
            metrics.TURNS.labels(mode=self.state.mode, status=turn.status).inc()
        timings = turn.timings.as_ms()
        if "voice_to_voice" in timings:
            metrics.VOICE_TO_VOICE.observe(timings["voice_to_voice"] / 1000)
        for stage in ("end_of_speech_wait", "llm_asr", "llm_first_token", "text_to_first_audio"):
            if stage in timings:
                metrics.STAGE_SECONDS.labels(stage=stage).observe(timings[stage] / 1000)
        log.info(
            "turn done", extra={"session": self.session_id, "turn": turn.turn_id, "status": turn.status, **timings}
        )
        assert self.output is not None
        if turn.audio_samples:
            await self.output.drained()
            if self._speaking is turn:
                self._speaking = None
                self._echo_tail_until = clock.now() + self._echo.max_delay
            if self.transport == "webrtc" and turn.heard is None:
                self.emit(events.make(events.OutputAudioBufferStopped, response_id=turn.response_id))
            if self._settings.echo_guard_ms and self.state.mode == "half_duplex":
                await asyncio.sleep(self._settings.echo_guard_ms / 1000)  # the guard is a duration, not a race
        elif self._speaking is turn:
            self._speaking = None
        if self._response_turn is None and self._user_turn is None:
            self._listening = True
        waiting = self._waiting_reply
        if waiting is not None and self._response_turn is None and self._speaking is None:
            self._waiting_reply = None  # the reply it waited for has been heard out: its turn now
            self._start_response(waiting)
            waiting.release()
        elif turn.replied and turn is not self._idle_turn and self._response_turn is None and self._user_turn is None:
            self._arm_idle_timeout()  # once a silence: not again after the reply the timeout made

    def _arm_idle_timeout(self) -> None:
        """server_vad's idle_timeout_ms: once a reply has been heard out, silence that long makes
        the model speak again (input_audio_buffer.timeout_triggered, then a response)."""
        detection = self.state.turn_detection
        self._cancel_idle_timeout()
        if detection is None or detection.type != "server_vad" or not detection.idle_timeout_ms:
            return
        self._idle_timer = asyncio.get_running_loop().call_later(
            detection.idle_timeout_ms / 1000, self._on_idle_timeout
        )

    def _cancel_idle_timeout(self) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None

    def _on_idle_timeout(self) -> None:
        self._idle_timer = None
        if self.closed.is_set() or self._user_turn or self._response_turn or self._held_turn or self._waiting_reply:
            return
        item_id = events.new_id("item")
        start, end = _ms(self._commit_offset), _ms(self._input.total)
        self.emit(
            events.make(rt.InputAudioBufferTimeoutTriggered, audio_start_ms=start, audio_end_ms=end, item_id=item_id)
        )
        self.emit(events.make(rt.InputAudioBufferCommittedEvent, previous_item_id=self._last_item_id, item_id=item_id))
        self._add_user_item(item_id, [events.UserContent(type="input_audio", transcript=None)])
        self._commit_offset = self._input.total
        options = self._options(None, respond_at_once=True)
        options.answer_history = True  # the silence has no words: the model goes on from the conversation
        turn = self._new_turn(options)
        turn.end_input()
        self._idle_turn = turn
        self._start_response(turn)

    def _playing(self) -> tuple[str, str] | None:
        """(response id, item id) of the reply whose audio is in the output now, or was last."""
        turn = self._speaking or self._response_turn
        if turn is not None:
            self._last_played = (turn.response_id, turn.item_id)
        return self._last_played

    def send_audio_delta(self, pcm16: bytes) -> None:
        """Assistant audio as a ``response.output_audio.delta`` event (WebSocket transport)."""
        playing = self._playing()
        if playing is None:
            return  # audio comes from a reply, so this does not happen
        response_id, item_id = playing
        self.emit(
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
        playing = self._playing()
        if playing is None or playing[0] == self._started_response:
            return
        response_id = self._started_response = playing[0]
        self.emit(events.make(events.OutputAudioBufferStarted, response_id=response_id))

    # Recording.

    def _apply_recording(self, event_id: str | None = None) -> None:
        """Start or stop recording as the session's ``parley.record`` (or the server's default) says."""
        asked = self.state.config.parley.record if self.state.config.parley else None
        wanted = self._settings.record_by_default if asked is None else asked
        record_dir = self._settings.record_dir
        if wanted and record_dir is None:
            if asked:
                raise _no_recording(event_id)
            return
        if wanted and self._recorder is None and record_dir is not None:
            metadata = {
                "session_id": self.session_id,
                "transport": self.transport,
                "mode": self.state.mode,
                "session": self.state.to_event_object(),
                "input_sample_rate": INPUT_RATE,
            }
            try:
                self._recorder = start_recording(
                    record_dir,
                    self.session_id,
                    metadata,
                    INPUT_RATE,
                    self._settings.record_keep_sessions,
                    self._settings.record_keep_days,
                )
            except OSError as exc:
                log.warning("recording could not start", extra={"session": self.session_id, "error": str(exc)})
                raise ProtocolError("recording_failed", "the session could not be recorded", event_id) from None
            log.info("recording", extra={"session": self.session_id, "folder": str(self._recorder.folder)})
        elif not wanted and self._recorder is not None:
            self._recorder.close("recording turned off")
            self._recorder = None

    def _on_played(self, pcm16: bytes, sample_rate: int, when: float) -> None:
        if self._duplex:  # only full duplex listens while the assistant speaks
            self._echo.played(pcm16, sample_rate, when)
        if self._recorder is not None:
            self._recorder.assistant_audio(pcm16, sample_rate, when)

    # Server VAD and end of turn.

    def _restart_vad(self) -> None:
        if not self.admitted:
            return  # it starts once the session is admitted
        if self._vad is not None:
            self._vad.close()
            self._vad = None
        if self._user_turn is not None:
            self._user_turn.cancel()
            self._user_turn = None
        self._drop_held_turn()
        detection = self.state.turn_detection
        if detection is not None:
            config = detect_config(detection, self._settings.speculative_pause_ms)
            self._vad = VadStream(self._services, config, lambda: self._input.total, self, self.session_id)

    @property
    def _heard(self) -> int:
        """How far the VAD has analysed the input (all of it without a VAD)."""
        return self._vad.heard if self._vad is not None else self._input.total

    def on_vad_heard(self, heard: int) -> None:
        """The VAD has heard up to ``heard`` with every event before it reported: a held turn
        whose silence has lasted is confirmed, speech over the assistant that has lasted is a
        barge-in. Counted in heard audio, so a VAD running behind under load decides the same."""
        if self._held_turn is not None and heard >= self._confirm_at:
            self._confirm_held_turn()
        if self._barge_in_at is not None:
            detection = self.state.turn_detection
            pause = pause_ms(detection, self._settings.speculative_pause_ms) if detection else 0
            # The VAD reports the end of speech `pause` after it: this much audio with no end
            # reported means the speech lasted barge_in_min_speech_ms.
            if heard - self._barge_in_at >= (self._settings.barge_in_min_speech_ms + pause) * INPUT_RATE // 1000:
                self._commit_barge_in()

    def on_vad_lost(self, message: str, status: str, first: bool) -> None:
        if first:  # tell the client once per outage
            metrics.SERVICE_ERRORS.labels(service="vad").inc()
            self.emit(events.error("service_unavailable", message))
        if self._user_turn is not None:  # speech in progress cannot be ended without the VAD
            self._user_turn.cancel()
            self._user_turn = None
        if self._barge_in_at is not None and self.output is not None:  # undecided: the reply plays on
            self._barge_in_at = None
            self.output.resume()
        self._echo_speech = None
        self._confirm_held_turn()  # a tentative pause is as good an end as any now

    def _drop_held_turn(self) -> None:
        if self._held_turn is not None:
            self._held_turn.discard()
            self._held_turn = None
        if self._confirm_timer is not None:
            self._confirm_timer.cancel()

    def on_speech_started(self, start: int) -> None:
        log.debug("speech started", extra={"session": self.session_id, "start": start, "at": self._input.total})
        if self._held_turn is not None:
            self._resume_held_turn()
            return
        if self._duplex and self._user_turn is None:
            now = clock.now()
            replying = self._speaking is not None or self._response_turn is not None
            if (replying or now < self._echo_tail_until) and self._echo.is_echo(now):
                log.info("speech taken for echo", extra={"session": self.session_id, "start": start})
                metrics.ECHO_REJECTED.inc()
                self._echo_speech, self._echo_checked = start, now
                return
            if replying:
                self._speech_over_reply(start, now)
                return
        if not self._listening or self._user_turn is not None or self._response_turn is not None:
            return
        self._hear_user(start, clock.now())

    def _hear_user(self, start: int, now: float) -> None:
        """The user started speaking at ``start``: tell the client and open their turn."""
        self._last_activity = now
        self._cancel_idle_timeout()
        item_id = events.new_id("item")
        self.emit(events.make(rt.InputAudioBufferSpeechStartedEvent, audio_start_ms=_ms(start), item_id=item_id))
        self._user_turn = self._open_voice_turn(item_id, start)

    def _open_voice_turn(self, item_id: str, start: int, replaces: str = "") -> Turn:
        detection = self.state.turn_detection
        options = self._options(
            item_id, respond_at_once=False, transcribe_only=bool(detection and not detection.create_response)
        )
        options.replaces_turn_id = replaces
        turn = self._new_turn(options)
        turn.start_offset = start
        if self._cut is not None:  # a reply this user spoke over: cut before it is answered
            turn.send_cut(*self._cut)
        self._send_camera_frame(turn, clock.now())
        turn.send_audio(self._input.slice(start))
        return turn

    @property
    def _duplex(self) -> bool:
        """The microphone stays open while the assistant speaks, and the user may interrupt."""
        return self.state.mode in ("full_duplex", "omni")

    def _send_camera_frame(self, turn: Turn, now: float) -> None:
        """Omni: the camera's newest picture goes with the user's speech, one as the turn opens,
        then one per sampling period, up to the per-turn limit."""
        if self.state.mode != "omni" or turn.images_sent >= self._settings.omni_max_frames_per_turn:
            return
        if turn.images_sent and now - turn.last_image_at < 1 / self.camera.frames_per_second:
            return
        jpeg = self.camera.fresh()
        if jpeg is None or jpeg is turn.last_image:
            return
        turn.send_image(jpeg)
        if self._recorder is not None:
            self._recorder.frame(jpeg)
        turn.images_sent += 1
        turn.last_image_at, turn.last_image = now, jpeg

    def on_speech_ended(self, end: int) -> None:
        """A pause of the VAD's silence. With server_vad it ends the turn if that silence is the
        turn's; with semantic_vad the VAD service judges whether the turn is over (on_turn_ended).
        Either way a shorter pause may start the answer early, held back until the turn ends."""
        log.debug("speech ended", extra={"session": self.session_id, "end": end, "at": self._input.total})
        self._echo_speech = None
        turn, detection = self._user_turn, self.state.turn_detection
        if turn is None or detection is None:
            return
        if self._barge_in_at is not None:
            pad = detection.prefix_padding_ms * INPUT_RATE // 1000
            if end - pad - self._barge_in_at < self._settings.barge_in_min_speech_ms * INPUT_RATE // 1000:
                self._false_interruption(end)
                return
            self._commit_barge_in()
        now = clock.now()
        pause = pause_ms(detection, self._settings.speculative_pause_ms)
        heard = self._heard
        # The VAD speaks after the pause; the speech ended that long before the audio it has heard.
        speech_end = max(turn.start_offset, heard - pause * INPUT_RATE // 1000)
        turn.timings.speech_end = self._arrival_time(speech_end)
        semantic = semantic_turn(detection)
        if semantic is None and pause >= detection.silence_duration_ms:
            turn.timings.speech_end_detected = now
            self._end_user_turn(end)
            return
        if semantic is not None and not self._settings.speculative_pause_ms:
            self._held_end = end  # the turn stays open until the VAD service ends it
            return
        # A tentative pause: answer now, but keep the answer back until the turn ends.
        # Recognition, the first tokens and the first words' audio happen meanwhile.
        self._user_turn = None
        turn.hold()
        turn.end_input()
        self._held_turn = turn
        # server_vad: the rest of the turn's silence; semantic_vad: the VAD's longest wait, as a
        # fallback (its turn_ended normally comes first).
        remaining_ms = semantic.max_wait_ms + 500 if semantic else detection.silence_duration_ms - pause
        self._confirm_at = heard + remaining_ms * INPUT_RATE // 1000
        self._held_end = end
        # If the client stops sending audio altogether, the pause still ends the turn.
        self._arm_confirm_timer(remaining_ms / 1000 + 0.5)

    def _arm_confirm_timer(self, seconds: float) -> None:
        """Confirm the held turn if the VAD hears nothing more for ``seconds`` (the client
        stopped sending audio); while audio is still being heard, the heard offset decides."""
        heard = self._heard

        def check() -> None:
            if self._held_turn is None:
                return
            if self._heard > heard:
                self._arm_confirm_timer(0.5)
            else:
                self._confirm_held_turn()

        self._confirm_timer = asyncio.get_running_loop().call_later(seconds, check)

    def on_turn_ended(self, end: int, ended: vad_pb2.TurnEnded) -> None:
        """The VAD service judged the user's turn over (semantic_vad)."""
        info = {
            "detection": "semantic_vad",
            "reason": vad_pb2.TurnEndReason.Name(ended.reason).removeprefix("TURN_END_REASON_").lower(),
            "probability": round(ended.probability, 3),
            "scorings": ended.scorings,
        }
        if self._held_turn is not None:
            self._held_turn.timings.end_of_turn = info
            self._confirm_held_turn()
        elif self._user_turn is not None and self._user_turn.timings.speech_end is not None:
            self._user_turn.timings.end_of_turn = info
            self._user_turn.timings.speech_end_detected = clock.now()
            self._end_user_turn(self._held_end)

    def _resume_held_turn(self) -> None:
        """The user spoke again within the turn's silence: drop the early answer and go on with
        one turn carrying the whole utterance, which replaces the early one in the LLM's history."""
        held = self._held_turn
        assert held is not None and held.options.user_item_id is not None
        self._held_turn = None
        if self._confirm_timer is not None:
            self._confirm_timer.cancel()
        held.discard()
        metrics.SPECULATIONS.labels(outcome="dropped").inc()
        self._last_activity = clock.now()
        self._user_turn = self._open_voice_turn(held.options.user_item_id, held.start_offset, replaces=held.turn_id)
        self._user_turn.continue_transcript(held)  # the client has those words already

    def _confirm_held_turn(self) -> None:
        turn = self._held_turn
        if turn is None:
            return
        self._held_turn = None
        if self._confirm_timer is not None:
            self._confirm_timer.cancel()
        metrics.SPECULATIONS.labels(outcome="kept").inc()
        turn.timings.speech_end_detected = clock.now()
        self._user_turn = turn
        if self._end_user_turn(self._held_end, input_already_ended=True):
            turn.release()

    # Full duplex: speech over the assistant.

    def _recheck_echo(self, now: float) -> None:
        """As input arrives: re-check a speech start taken for echo (the user may have started
        talking over it)."""
        if self._barge_in_at is None and self._echo_speech is not None and now - self._echo_checked >= 0.1:
            # Speech taken for echo goes on: is it still echo, or the user talking over it (or on
            # after the assistant stopped)? Either way the user's turn keeps half a second before now.
            self._echo_checked = now
            if self._echo.is_echo(now):
                return
            start = max(self._echo_speech, self._input.total - INPUT_RATE // 2)
            self._echo_speech = None
            if self._speaking is not None or self._response_turn is not None:
                self._speech_over_reply(start, now)
            elif self._user_turn is None:
                self.on_speech_started(start)

    def _speech_over_reply(self, start: int, now: float) -> None:
        """The user speaks while the assistant does: a barge-in, or, with ``interrupt_response``
        false, their turn opens beside the reply, whose voice plays on (theirs is answered after)."""
        detection = self.state.turn_detection
        if detection is None or detection.interrupt_response:
            self._begin_barge_in(start, now)
        elif self._user_turn is None and self._waiting_reply is None:
            self._hear_user(start, now)

    def _begin_barge_in(self, start: int, now: float) -> None:
        """Speech over the assistant: pause its voice now, and hear the user out."""
        assert self.output is not None
        log.info("speech over the reply", extra={"session": self.session_id, "start": start, "at": self._input.total})
        self.output.pause()
        self._barge_in_at = self._heard
        detection = self.state.turn_detection
        pad = detection.prefix_padding_ms * INPUT_RATE // 1000 if detection else 0
        onset = min(start + pad, self._input.total)
        metrics.BARGE_IN_SECONDS.observe(max(0.0, now - self._arrival_time(onset)))
        self._hear_user(start, now)

    def _false_interruption(self, end: int) -> None:
        """The speech over the assistant ended too soon to count: play the reply on."""
        assert self.output is not None
        self._barge_in_at = None
        self.output.resume()
        turn, self._user_turn = self._user_turn, None
        if turn is not None:
            turn.discard()
            item_id = turn.options.user_item_id
            self.emit(events.make(rt.InputAudioBufferSpeechStoppedEvent, audio_end_ms=_ms(end), item_id=item_id))
            self.emit(events.make(rt.InputAudioBufferClearedEvent))
        metrics.FALSE_INTERRUPTIONS.inc()
        log.info("false interruption", extra={"session": self.session_id, "end": end})

    def _commit_barge_in(self) -> None:
        """The user is talking over the assistant: stop the reply for good, cut to what was heard."""
        assert self.output is not None
        self._barge_in_at = None
        interrupted = self._speaking or self._response_turn
        for turn in {self._speaking, self._response_turn}:
            if turn is not None:
                self._stop_reply(turn, turn.heard_samples(), "turn_detected")
        self.output.clear()
        if interrupted is not None:
            metrics.BARGE_INS.inc()
            log.info("barge-in", extra={"session": self.session_id, "turn": interrupted.turn_id})

    def _stop_reply(self, turn: Turn, heard_samples: int, reason: events.CancelReason) -> None:
        """Cut ``turn``'s reply to its first ``heard_samples`` of audio: cancel it if it still
        runs, tell the client, and have the LLM keep only the heard part."""
        assert self.output is not None
        text = turn.truncate(heard_samples)
        turn.cancel(reason)
        if self.transport == "webrtc" and self._speaking is turn:  # the API's buffer events are WebRTC's
            self.emit(events.make(events.OutputAudioBufferCleared, response_id=turn.response_id))
        self.emit(
            events.make(
                events.ConversationItemTruncated,
                item_id=turn.item_id,
                content_index=0,
                audio_end_ms=heard_samples * 1000 // self.output.sample_rate,
                parley={"transcript": text},
            )
        )
        if self._user_turn is not None:
            self._user_turn.send_cut(turn.turn_id, text)
        self._cut = (turn.turn_id, text)

    def _truncate_item(self, event: protocol.ConversationItemTruncate) -> None:
        """conversation.item.truncate: the client says how much of a reply its user heard."""
        assert self.output is not None
        turn = self._replies.get(event.item_id)
        if turn is None:
            raise ProtocolError(
                "item_not_found", f"no assistant item {event.item_id!r} to truncate", event.event_id, "item_id"
            )
        if event.content_index != 0:
            raise ProtocolError("invalid_value", "content_index must be 0", event.event_id, "content_index")
        # A client's playback position may run a little past the audio (its own rounding, a
        # clock): the cut is at most the whole item.
        samples = min(event.audio_end_ms * self.output.sample_rate // 1000, turn.audio_samples)
        if self._speaking is turn:
            self.output.clear()
        self._stop_reply(turn, samples, "client_cancelled")
        if self._user_turn is None:  # no turn to carry the cut: tell the LLM directly
            self._cut = None
            self.spawn(self._truncate_in_llm(turn))

    async def _truncate_in_llm(self, turn: Turn) -> None:
        """Between turns nothing carries the cut: call TruncateReply once the turn has wound up."""
        await wait_for_end(turn)
        try:
            assert self._services.llm is not None  # only admitted sessions have replies
            await self._services.llm.TruncateReply(
                conversation_pb2.TruncateReplyRequest(
                    session_id=self.session_id, turn_id=turn.turn_id, heard_text=turn.spoken_text
                ),
                timeout=5,
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.NOT_FOUND:  # a reply the LLM never kept needs no cut
                log.warning("truncate failed", extra={"session": self.session_id, "status": exc.code().name})

    def _end_user_turn(self, end: int, input_already_ended: bool = False) -> bool:
        """End the user's turn and start its reply; False if the reply waits for one still playing."""
        turn = self._user_turn
        assert turn is not None and turn.options.user_item_id is not None
        self._user_turn = None
        if not input_already_ended:
            turn.end_input()
        item_id = turn.options.user_item_id
        if turn.timings.end_of_turn is None:
            turn.timings.end_of_turn = {"detection": "server_vad", "reason": "silence"}
        metrics.END_OF_TURN.labels(
            detection=turn.timings.end_of_turn["detection"], reason=turn.timings.end_of_turn["reason"]
        ).inc()
        if self.state.mode == "half_duplex":
            self._listening = False
        self._cut = None  # carried by this turn (or by the turn it replaced)
        started = True
        self.emit(events.make(rt.InputAudioBufferSpeechStoppedEvent, audio_end_ms=_ms(end), item_id=item_id))
        self.emit(events.make(rt.InputAudioBufferCommittedEvent, previous_item_id=self._last_item_id, item_id=item_id))
        self._commit_offset = self._input.total
        self._add_user_item(item_id, [events.UserContent(type="input_audio", transcript=None)])
        turn.user_item_committed()
        if self._response_turn is not None or self._speaking is not None:
            # interrupt_response false: the user spoke over a reply that plays on; this turn's
            # answer is made now but kept back until that reply has been heard out.
            turn.hold()
            self._waiting_reply = turn
            started = False
        else:
            self._start_response(turn)
        return started


def _asked_voice(config: protocol.SessionConfig) -> str | None:
    """The voice a session config names (a name, or an object with an id)."""
    voice = config.audio.output.voice if config.audio and config.audio.output else None
    return voice.id if isinstance(voice, protocol.VoiceId) else voice


def _no_recording(event_id: str | None) -> ProtocolError:
    return ProtocolError(
        "recording_not_enabled",
        "this server does not record sessions (it runs without --record-dir)",
        event_id,
        "session.parley.record",
    )


def _as_logged(raw: str | bytes) -> dict[str, Any]:
    """A client event as the recording keeps it: the JSON object, or the text if it is not one."""
    try:
        parsed = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        parsed = None
    if isinstance(parsed, dict):
        return parsed
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    return {"unparsed": text[:2000]}


def _send_inputs(turn: Turn, inputs: list[UserInput]) -> None:
    for piece in inputs:
        if isinstance(piece.value, str):
            turn.send_text(piece.value)
        elif piece.kind == "audio":
            turn.send_audio(piece.value)
        else:
            turn.send_image(piece.value)
