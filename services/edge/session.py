"""One client session: it joins the parts and handles the client's events.

A session does not know its transport. WebRTC and WebSocket handlers feed it client events
(``handle_text``) and microphone audio at 16 kHz (``push_input``), give it an ``AudioOutput``
for the assistant's voice and a ``send`` function for server events. The session keeps the
config, the input audio, the conversation's items and what waits for a response; the parts
that take the turns are its own:

- ``voice.VoiceTurns``: server turn detection, the user's turn (``turn_taking``) and speech over
  the assistant, as the mode (``modes``) says;
- ``assistant.Assistant``: the replies being made, heard and kept waiting, cut to what was heard;
- ``reply.Reply``: one reply, its LLM and TTS calls and the events that describe it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import deque
from collections.abc import Callable
from typing import Any

import grpc
from openai.types import realtime as rt
from parley.v1 import conversation_pb2, speech_pb2

from services.common.languages import listed
from services.edge import clock, events, items, metrics, protocol, tools
from services.edge.admission import Admission
from services.edge.assistant import Assistant
from services.edge.audio import INPUT_RATE, AudioOutput, InputAudio, PcmResampler
from services.edge.config import OPENAI_VOICES, SessionState
from services.edge.conversation import Conversation
from services.edge.events import Event, ServerEvent
from services.edge.items import PendingInput, UserInput
from services.edge.models import ModelServices, ServiceFailure
from services.edge.modes import MODES, Mode
from services.edge.protocol import ProtocolError
from services.edge.recording import SessionRecorder, start_recording
from services.edge.reply import Reply, ReplyOptions, cancel_and_wait
from services.edge.settings import EdgeSettings
from services.edge.video import CameraFrames
from services.edge.voice import VoiceTurns, ms

log = logging.getLogger(__name__)

_MIN_COMMIT_MS = 100


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
        self.settings = settings
        self.services = services  # until admitted: without an LLM replica
        self._admission = admission
        self.admitted = admission is None
        self._send = send
        self.state = SessionState(session_id, settings, model)
        self.conversation = Conversation(events.new_id("conv"))  # the session's one conversation
        self.output: AudioOutput | None = None  # set by the transport before start()
        self.input = InputAudio(settings.max_input_buffer_seconds)
        self._arrivals: deque[tuple[int, float]] = deque(maxlen=2000)  # (input total, edge clock time)
        self._resampler_24k = PcmResampler(24000, INPUT_RATE)
        self.commit_offset = 0  # the input before it is committed (or cleared)
        self._pending = PendingInput()  # user input waiting for response.create
        self.last_item_id: str | None = None
        # Omni: the call's camera, sampled (fed by the WebRTC transport).
        self.camera = CameraFrames(wanted=lambda: self.mode.camera)
        self.recorder: SessionRecorder | None = None
        self._queued = False  # waited in the admission queue
        self._tasks: set[asyncio.Task[Any]] = set()
        self._sent_prompt: str | None = None
        self.last_activity = clock.now()
        self.started_at = clock.now()
        self.closed = asyncio.Event()
        self._closing = False
        self.close_reason = ""
        self.assistant = Assistant(self)
        self.voice = VoiceTurns(self)

    @property
    def mode(self) -> Mode:
        return MODES[self.state.mode]

    # Lifecycle.

    def start(self) -> None:
        if self.output is not None:
            self.output.on_played = self._on_played
        self._know_recogniser()
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
            self.services = self.services.pinned(replica)
            self.admitted = True
        if self.admitted:
            self.voice.restart()
        else:
            self.spawn(self._wait_for_admission())

    async def _wait_for_admission(self) -> None:
        """Get an LLM replica, waiting in line if every one is full; the session starts then."""
        assert self._admission is not None
        asked = clock.now()
        try:
            replica = await asyncio.wait_for(self._admission.admit(self), self.settings.queue_max_wait_seconds)
        except TimeoutError:
            waited = self.settings.queue_max_wait_seconds
            self.emit(events.error("queue_timeout", f"No model replica became free within {waited:.0f} s; try later."))
            await self.close("queue timeout")
            return
        self.services = self.services.pinned(replica)
        self.admitted = True
        if self._queued:
            waited = round(clock.now() - asked, 1)
            self.emit(events.make(events.QueueAdmitted, waited_seconds=waited))
        self.last_activity = clock.now()
        self.voice.restart()

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
            await cancel_and_wait(self.assistant.making)
        self.close_reason = reason
        self.closed.set()
        if self.recorder is not None:
            self.recorder.close(reason)
        for task in list(self._tasks):
            if task is not asyncio.current_task():  # close() may run inside one (the watchdog)
                task.cancel()
        await self.voice.close()
        await self.assistant.close()
        if self.admitted and self.services.llm is not None:
            with contextlib.suppress(grpc.aio.AioRpcError):
                await self.services.llm.EndSession(
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
        if self.recorder is not None:
            self.recorder.event("server", wire)
        self._send(wire)

    def _client_error(self, error: ProtocolError) -> None:
        metrics.CLIENT_ERRORS.labels(code=error.code).inc()
        self._deliver(error.to_event())

    async def _watchdog(self) -> None:
        """Close the session after the idle timeout or at its maximum length."""
        idle, longest = self.settings.idle_timeout_seconds, self.settings.max_session_seconds
        while True:
            now = clock.now()
            if self.assistant.making is not None or not self.admitted:
                self.last_activity = now  # the assistant speaking is activity, and so is waiting in line
            idle_left = self.last_activity + idle - now
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
        if self.voice.deaf:
            pcm16 = bytes(len(pcm16))
        now = clock.now()
        if self.recorder is not None:
            self.recorder.user_audio(pcm16)
        self.input.append(pcm16)
        self._arrivals.append((self.input.total, now))
        self.voice.push(pcm16, now)

    def arrival_time(self, offset: int) -> float:
        """When the input sample at ``offset`` reached the edge (edge clock)."""
        for total, when in self._arrivals:
            if total >= offset:
                return when
        return clock.now()

    async def handle_text(self, raw: str | bytes) -> None:
        """One client event as JSON text."""
        if self.recorder is not None:
            self.recorder.event("client", _as_logged(raw))
        try:
            event = protocol.parse_client_event(raw, self.settings.max_event_bytes)
            if not isinstance(event, protocol.InputAudioBufferAppend):
                # Audio is not activity by itself (a client may stream silence forever); speech is,
                # and the VAD says when there is speech.
                self.last_activity = clock.now()
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
            self.commit_offset = self.input.total
            await self.voice.clear()
            self.emit(events.make(rt.InputAudioBufferClearedEvent))
        elif isinstance(event, protocol.ConversationItemCreate):
            await self._create_item(event)
        elif isinstance(event, protocol.ResponseCreate):
            await self._create_response(event)
        elif isinstance(event, protocol.ResponseCancel):
            self.assistant.cancel(event)
        elif isinstance(event, protocol.ConversationItemTruncate):
            self.assistant.truncate(event)
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
            self.assistant.clear_output()
        else:
            raise ProtocolError(
                "unsupported_event", f"{event.type} is not supported by this server yet", event_id, "type"
            )

    async def _update_session(self, event: protocol.SessionUpdate) -> None:
        update = event.session.model_dump(exclude_unset=True)
        before = self.state.turn_detection
        new_config = self.state.apply(update)
        if (update.get("parley") or {}).get("record") and self.settings.record_dir is None:
            raise _no_recording(event.event_id)
        self._check_output_tokens(new_config.max_output_tokens, event.event_id, "session.max_output_tokens")
        self._know_recogniser()
        self._check_languages(new_config, event.event_id)
        session_tools = tools.for_turn(tools.check(new_config.tools or [], event.event_id, "session.tools"))
        tools.check_choice(session_tools, tools.choice_for_turn(new_config.tool_choice), event.event_id)
        asked, before_asked = _asked_voice(new_config), _asked_voice(self.state.config)
        tts_voice = self.state.tts_voice
        if asked != before_asked:
            tts_voice = await self._tts_voice(asked, event.event_id, "session.audio.output.voice") if asked else ""
        self.state.config = new_config
        self.state.tts_voice = tts_voice
        if self.state.turn_detection != before:
            self.voice.update()
        fps = new_config.parley.video_frames_per_second if new_config.parley else None
        self.camera.frames_per_second = fps or 1.0
        self._apply_recording(event_id=event.event_id)
        self.emit(events.make(rt.SessionUpdatedEvent, session=self.state.to_event_object()))

    def _check_output_tokens(self, value: int | str | None, event_id: str | None, param: str) -> None:
        """A reply length the session's LLM replica allows (the API's 1-4096 is checked in parsing)."""
        limit = self.services.limits.max_output_tokens
        if isinstance(value, int) and value > limit:
            raise ProtocolError(
                "invalid_value",
                f"max_output_tokens may be at most {limit} on this server, got {value}",
                event_id,
                param,
            )

    def _check_languages(self, config: protocol.SessionConfig, event_id: str | None) -> None:
        """Languages of the user's speech that the recogniser knows (the replica says which)."""
        transcription = config.audio.input.transcription if config.audio and config.audio.input else None
        known = self.services.limits.languages
        if transcription is None or not known:
            return
        named = [("language", transcription.language)] + [("languages", x) for x in transcription.languages or []]
        for field, language in named:
            if language and language not in known:
                raise ProtocolError(
                    "invalid_value",
                    f"the recogniser does not transcribe {language!r}; it knows {listed(known)}",
                    event_id,
                    f"session.audio.input.transcription.{field}",
                )

    def _know_recogniser(self) -> None:
        """The language the recogniser assumes, for session.updated (once the replicas have said)."""
        known = self.services.limits.languages
        if known:
            self.state.recogniser_language = known[0]

    async def _tts_voice(self, voice: str, event_id: str | None, param: str) -> str:
        """The TTS voice for the voice a client named: one of the TTS service's, or one of OpenAI's
        names, which map to ``--openai-voice`` (empty: the default voice)."""
        try:
            reply = await self.services.tts.ListVoices(speech_pb2.ListVoicesRequest(), timeout=3)
        except grpc.aio.AioRpcError as exc:
            failure = ServiceFailure("tts", exc)
            raise ProtocolError(failure.client_code, failure.client_message, event_id) from None
        names = [v.name for v in reply.voices]
        if voice in names:
            return voice
        if voice in OPENAI_VOICES:
            return self.settings.openai_voice
        raise ProtocolError(
            "invalid_value",
            f"unknown voice {voice!r}; available: {', '.join(names)}, or one of OpenAI's "
            f"({', '.join(sorted(OPENAI_VOICES))}), which this server speaks as "
            f"{self.settings.openai_voice or reply.default_voice!r}",
            event_id,
            param,
        )

    def _commit(self, event_id: str | None) -> None:
        self._require_admitted(event_id)
        if self.voice.commit():  # server VAD with a turn in progress: it ends now
            return
        audio = self.input.slice(self.commit_offset)
        if len(audio) // 2 < INPUT_RATE * _MIN_COMMIT_MS // 1000:
            raise ProtocolError(
                "input_audio_buffer_commit_empty",
                f"buffer too small: expected at least {_MIN_COMMIT_MS} ms of audio, but the buffer has "
                f"{ms(len(audio) // 2)} ms",
                event_id,
            )
        item_id = events.new_id("item")
        self._pending.hold([UserInput(item_id, "audio", audio)], self.services.limits, event_id)
        self.commit_offset = self.input.total
        self.emit(events.make(rt.InputAudioBufferCommittedEvent, previous_item_id=self.last_item_id, item_id=item_id))
        self._add_user_item(item_id, [events.UserContent(type="input_audio", transcript=None)])

    def commit_voice_item(self, item_id: str) -> None:
        """The input so far becomes the user item ``item_id`` (its audio went with the user's turn)."""
        self.emit(events.make(rt.InputAudioBufferCommittedEvent, previous_item_id=self.last_item_id, item_id=item_id))
        self.commit_offset = self.input.total
        self._add_user_item(item_id, [events.UserContent(type="input_audio", transcript=None)])

    def _add_user_item(self, item_id: str, content: list[events.UserContent]) -> None:
        item = events.user_item(item_id, content)
        self.emit(events.make(rt.ConversationItemAdded, previous_item_id=self.last_item_id, item=item))
        self.emit(events.make(rt.ConversationItemDone, previous_item_id=self.last_item_id, item=item))
        self.last_item_id = item_id

    async def _create_item(self, event: protocol.ConversationItemCreate) -> None:
        if event.previous_item_id == "root" and self.last_item_id is None:
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
        if event.previous_item_id not in (None, self.last_item_id):
            raise ProtocolError(
                "invalid_value",
                "a user message goes at the end of the conversation (previous_item_id: the newest item, or none; "
                "'root' only while the conversation is empty)",
                event.event_id,
                "previous_item_id",
            )
        limits = self.services.limits
        inputs, content = await items.user_content(item, item_id, event.event_id, self._pending, limits)
        self._pending.hold(inputs, self.services.limits, event.event_id)
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
        if after == self.last_item_id:
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
        assert self.services.llm is not None  # admitted
        try:
            await self.services.llm.AddMessages(
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
        previous = event.previous_item_id or self.last_item_id
        self.emit(events.make(rt.ConversationItemAdded, previous_item_id=previous, item=added))
        self.emit(events.make(rt.ConversationItemDone, previous_item_id=previous, item=added))
        if not after:
            self.last_item_id = item_id

    async def _delete_item(self, event: protocol.ConversationItemDelete) -> None:
        """Remove an item: from what waits for a response, or from the LLM's history."""
        item_id = event.item_id
        waiting = self._pending.remove(item_id)
        if not waiting and item_id not in self.conversation:
            raise ProtocolError("item_not_found", f"no item {item_id!r} in the conversation", event.event_id, "item_id")
        if not waiting and self.admitted and self.services.llm is not None:
            try:
                await self.services.llm.DeleteMessage(
                    conversation_pb2.DeleteMessageRequest(session_id=self.session_id, item_id=item_id), timeout=5
                )
            except grpc.aio.AioRpcError as exc:
                if exc.code() != grpc.StatusCode.NOT_FOUND:  # not in the history (a reply never kept): gone already
                    failure = ServiceFailure("llm", exc)
                    raise ProtocolError(failure.client_code, failure.client_message, event.event_id) from None
        self.emit(events.make(rt.ConversationItemDeletedEvent, item_id=item_id))

    # Responses.

    def options(self, user_item_id: str | None, respond_at_once: bool, transcribe_only: bool = False) -> ReplyOptions:
        prompt = self.state.config.instructions
        system_prompt = prompt if prompt and prompt != self._sent_prompt else None
        self._sent_prompt = prompt or self._sent_prompt
        return ReplyOptions(
            session_id=self.session_id,
            mode=self.mode.contract,
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
            first_spoken_chars=self.settings.first_spoken_chars,
            stall_seconds=self.settings.service_stall_seconds,
            tools=tools.for_turn(self.state.config.tools),
            tool_choice=tools.choice_for_turn(self.state.config.tool_choice),
            transcription_prompt=self.state.transcription_prompt,
            transcription_language=self.state.transcription_language,
        )

    def new_reply(self, options: ReplyOptions) -> Reply:
        """A reply, started: it takes its input as it is sent."""
        assert self.output is not None
        self._require_admitted(None)
        return Reply(self.services, options, self.output, self.emit, self.last_item_id).start()

    def _require_admitted(self, event_id: str | None) -> None:
        if not self.admitted:
            raise ProtocolError(
                "session_queued",
                "this session waits for a free model replica (see parley.queue.updated); it can talk once admitted",
                event_id,
            )

    async def _create_response(self, event: protocol.ResponseCreate) -> None:
        self._require_admitted(event.event_id)
        if self.assistant.making is not None:
            raise ProtocolError(
                "conversation_already_has_active_response",
                f"response {self.assistant.making.response_id} is still in progress; "
                "cancel it or wait for response.done",
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
        reply = self.new_reply(options)
        _send_inputs(reply, self._pending.take())
        reply.end_input()
        self.assistant.start(reply)

    async def _response_options(
        self, event: protocol.ResponseCreate, params: protocol.ResponseParams, audio_item: str | None
    ) -> ReplyOptions:
        """A response's options: the session's, with what response.create sets for it alone."""
        self._check_output_tokens(params.max_output_tokens, event.event_id, "response.max_output_tokens")
        options = self.options(audio_item, respond_at_once=True)
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
        reply = self.new_reply(options)
        for message in context:
            reply.send_context(message)
        _send_inputs(reply, inputs)
        reply.end_input()
        self.assistant.start(reply)

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
        limits = self.services.limits
        inputs, _ = await items.user_content(input_items[last_user], events.new_id("item"), event_id, room, limits)
        room.hold(inputs, limits, event_id)
        return context, inputs

    # Recording.

    def _apply_recording(self, event_id: str | None = None) -> None:
        """Start or stop recording as the session's ``parley.record`` (or the server's default) says."""
        asked = self.state.config.parley.record if self.state.config.parley else None
        wanted = self.settings.record_by_default if asked is None else asked
        record_dir = self.settings.record_dir
        if wanted and record_dir is None:
            if asked:
                raise _no_recording(event_id)
            return
        if wanted and self.recorder is None and record_dir is not None:
            metadata = {
                "session_id": self.session_id,
                "transport": self.transport,
                "mode": self.state.mode,
                "session": self.state.to_event_object(),
                "input_sample_rate": INPUT_RATE,
            }
            try:
                self.recorder = start_recording(
                    record_dir,
                    self.session_id,
                    metadata,
                    INPUT_RATE,
                    self.settings.record_keep_sessions,
                    self.settings.record_keep_days,
                )
            except OSError as exc:
                log.warning("recording could not start", extra={"session": self.session_id, "error": str(exc)})
                raise ProtocolError("recording_failed", "the session could not be recorded", event_id) from None
            log.info("recording", extra={"session": self.session_id, "folder": str(self.recorder.folder)})
        elif not wanted and self.recorder is not None:
            self.recorder.close("recording turned off")
            self.recorder = None

    # The assistant's audio.

    def _on_played(self, pcm16: bytes, sample_rate: int, when: float) -> None:
        self.voice.played(pcm16, sample_rate, when)
        if self.recorder is not None:
            self.recorder.assistant_audio(pcm16, sample_rate, when)

    def send_audio_delta(self, pcm16: bytes) -> None:
        """Assistant audio as a ``response.output_audio.delta`` event (WebSocket transport)."""
        self.assistant.send_audio_delta(pcm16)

    def on_output_started(self) -> None:
        """The outgoing track began playing (WebRTC)."""
        self.assistant.on_output_started()


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


def _send_inputs(reply: Reply, inputs: list[UserInput]) -> None:
    for piece in inputs:
        if isinstance(piece.value, str):
            reply.send_text(piece.value)
        elif piece.kind == "audio":
            reply.send_audio(piece.value)
        else:
            reply.send_image(piece.value)
