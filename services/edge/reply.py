"""A reply: one ``Respond`` call to the LLM service (the contract's turn: the user's input and
the answer to it), the answer streamed into the TTS service and the assistant's audio output,
and the Realtime API events that describe it. The session holds it as a handle: feed it input,
hold / release / discard it, cancel it, cut it to what was heard, wait for its end.

Nothing waits for a whole stage: user audio streams into the LLM call while the user speaks,
text deltas go to the TTS call as they arrive, and audio is played as soon as it comes back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
from openai.types import realtime as rt
from parley.v1 import audio_pb2, conversation_pb2, speech_pb2

from services.edge import clock, events, metrics
from services.edge.audio import AudioOutput
from services.edge.events import ServerEvent
from services.edge.models import ModelServices, ServiceFailure
from services.edge.response import ResponseEvents

log = logging.getLogger(__name__)

_END = object()


@dataclass
class ReplyTimings:
    """A reply's milestones on the edge's clock, in seconds; None until reached."""

    speech_end: float | None = None  # the last speech sample reached the edge
    speech_end_detected: float | None = None  # the VAD said so
    input_done: float | None = None  # EndOfInput sent
    first_text: float | None = None
    first_audio: float | None = None
    llm: dict[str, float] = field(default_factory=dict)
    tts: dict[str, float] = field(default_factory=dict)
    # How the user's turn was judged over: detection, reason (and the turn model's score).
    end_of_turn: dict[str, Any] | None = None

    def as_ms(self) -> dict[str, float]:
        out: dict[str, float] = {}
        start = self.speech_end if self.speech_end is not None else self.input_done
        if self.speech_end is not None and self.speech_end_detected is not None:
            out["end_of_speech_wait"] = (self.speech_end_detected - self.speech_end) * 1000
        if start is not None and self.first_text is not None:
            out["first_text"] = (self.first_text - start) * 1000
        if start is not None and self.first_audio is not None:
            key = "voice_to_voice" if self.speech_end is not None else "input_to_first_audio"
            out[key] = (self.first_audio - start) * 1000
        if self.first_text is not None and self.first_audio is not None:
            out["text_to_first_audio"] = (self.first_audio - self.first_text) * 1000
        out.update({f"llm_{k}": v for k, v in self.llm.items()})
        out.update({f"tts_{k}": v for k, v in self.tts.items()})
        return {k: round(v, 1) for k, v in out.items()}


@dataclass
class ReplyOptions:
    session_id: str
    mode: int  # conversation_pb2.ConversationMode
    modalities: list[events.Modality]
    voice: str
    speed: float | None
    system_prompt: str | None
    max_output_tokens: int | None
    user_item_id: str | None  # the user item whose audio this turn carries (transcription events)
    respond_at_once: bool  # announce the response now (response.create), not when words are heard
    transcribe_only: bool = False  # add the user's words to the history without a reply
    replaces_turn_id: str = ""  # a turn begun at a tentative pause that this one replaces
    conversation_id: str | None = None  # None: an out-of-band response (conversation "none")
    metadata: dict[str, str] | None = None  # the client's, echoed in the response object
    live_transcripts: bool = False  # parley.input_audio_transcription.partial while the user speaks
    instructions: str | None = None  # this response's system prompt (response.create's instructions)
    out_of_band: bool = False  # answered from its own input; nothing of it goes into the history
    user_item_ids: list[str] = field(default_factory=list)  # the client's items this turn's input merges
    tools: list[conversation_pb2.Tool] = field(default_factory=list)  # functions the model may call
    tool_choice: conversation_pb2.ToolChoice | None = None
    answer_history: bool = False  # no input: the model replies to the conversation as it stands
    transcription_prompt: str = ""  # words the recogniser should expect
    transcription_language: str = ""  # the language of the user's speech (empty: the recogniser's default)
    score_end_of_turn: bool = False  # the LLM scores the user's words as an end of turn (semantic_vad's words)
    first_spoken_chars: int = 16  # the TTS service's first piece of speech, in characters
    stall_seconds: float = 30.0  # once input has ended, the longest the LLM may say nothing


class Reply:
    """Feed it input with ``send_*``, then ``end_input``; ``start()`` runs it, and ``task``
    finishes when the response is done (completed, cancelled or failed)."""

    def __init__(
        self,
        services: ModelServices,
        options: ReplyOptions,
        output: AudioOutput,
        emit: Callable[[ServerEvent], None],
        previous_item_id: str | None,
    ) -> None:
        self._services = services
        self.options = options
        self._output = output
        self._emit_now = emit
        self.turn_id = events.new_id("turn")
        self.response_id = events.new_id("resp")
        self.item_id = events.new_id("item")
        self.timings = ReplyTimings()
        self._inputs: asyncio.Queue[object] = asyncio.Queue()
        self._call: Any = None  # opened by the task, once the LLM service's channel is ready
        self._tts_call: Any = None
        self._tts_reader: asyncio.Task[None] | None = None
        self._response = ResponseEvents(self.response_id, self.item_id, options, previous_item_id, self._emit)
        self._usage: Any = None  # the LLM's token counts, once it is done
        self._text: list[str] = []
        self._audio_sent = 0  # samples of the user's audio (16 kHz) sent to the LLM
        self._transcript = ""  # the user's words sent in transcription deltas (which only append)
        self._partial = ""  # the newest partial transcript: ahead of the deltas, or revised
        self._final_transcript: str | None = None  # kept until the user item is committed
        # The words' end-of-turn score (options.score_end_of_turn), once it has come; None if it
        # never will (no words, or an engine that cannot score).
        self.words_score: asyncio.Future[float | None] = asyncio.get_running_loop().create_future()
        # The API sends an item's transcription only once the item is committed and added; a voice
        # turn's user item is committed when the user's turn ends (user_item_committed).
        self._item_committed = options.respond_at_once
        self._input_ended = False
        self._cancelled = False
        self.status: events.ResponseStatus = "in_progress"
        self.cancel_reason: events.CancelReason = "client_cancelled"
        self.audio_samples = 0
        # Where the turn's first audio sits in the output's timeline (played + queued samples),
        # and the text of each spoken piece with its sample range: what was heard, at barge-in.
        self.output_start: int | None = None
        self._segments: list[tuple[str, int, int]] = []
        self.heard: str | None = None  # the reply cut to what the user heard (truncated)
        # Omni: camera pictures sent with the user's speech (the newest, and when).
        self.images_sent = 0
        self.last_image_at = 0.0
        self.last_image: bytes | None = None
        self.failure: ServiceFailure | None = None
        self.replied = False  # a response was announced (the user said something)
        # A held turn runs but keeps its events and audio back until it is released (the pause
        # is confirmed as the end of the turn) or discarded (the user went on speaking).
        self._holding = False
        self._discarded = False
        # Once input has ended, each word from the LLM or TTS service must come within
        # stall_seconds; a call given up on says why here (and the turn fails with it).
        self._stall_timer: asyncio.TimerHandle | None = None
        self._last_word = 0.0  # loop time of the services' last word
        self._abandoned: tuple[str, grpc.StatusCode, str] | None = None  # (service, status, details)
        self._llm_done = False
        # Events and audio (bytes) in the order they came: released in that order, so that no
        # audio delta follows the response.done of a reply that finished while held.
        self._held: list[ServerEvent | bytes] = []
        self.task: asyncio.Task[None] = asyncio.Future()  # type: ignore[assignment]  # until start()

    def start(self) -> Reply:
        """Open the calls: the reply runs from now, on the input sent so far and to come."""
        self.task = asyncio.create_task(self._run(), name=f"reply-{self.turn_id}")
        return self

    # Input.

    def send_audio(self, pcm16: bytes) -> None:
        if pcm16 and not self._input_ended:
            self._audio_sent += len(pcm16) // 2
            self._inputs.put_nowait(
                conversation_pb2.RespondRequest(audio=audio_pb2.AudioChunk(pcm16=pcm16, sample_rate=16000))
            )

    def send_text(self, text: str) -> None:
        self._inputs.put_nowait(conversation_pb2.RespondRequest(text=conversation_pb2.TextInput(text=text)))

    def send_cut(self, turn_id: str, heard_text: str) -> None:
        """Have the LLM cut an earlier reply to what was heard before it answers this turn."""
        if not self._input_ended:
            cut = conversation_pb2.CutReply(turn_id=turn_id, heard_text=heard_text)
            self._inputs.put_nowait(conversation_pb2.RespondRequest(cut_reply=cut))

    def send_context(self, message: conversation_pb2.HistoryMessage) -> None:
        """A message of the turn's own context, before its input (out-of-band responses)."""
        self._inputs.put_nowait(conversation_pb2.RespondRequest(context=message))

    def send_image(self, jpeg: bytes, at: float | None = None) -> None:
        self._inputs.put_nowait(conversation_pb2.RespondRequest(image=audio_pb2.ImageFrame(jpeg=jpeg)))
        self.images_sent += 1
        self.last_image, self.last_image_at = jpeg, clock.now() if at is None else at

    def user_turn_paused(self, speech_end: float) -> None:
        """The user's speech stopped at ``speech_end`` (edge clock): voice to voice runs from there."""
        self.timings.speech_end = speech_end

    def user_turn_ended(self, how: dict[str, Any] | None = None) -> None:
        """The user's turn was judged over now; ``how`` says how (response.done's end_of_turn)."""
        self.timings.speech_end_detected = clock.now()
        if how is not None:
            self.timings.end_of_turn = how

    def end_input(self) -> None:
        if not self._input_ended:
            self._input_ended = True
            self._inputs.put_nowait(_END)
            self._watch_for_stall()

    def _watch_for_stall(self) -> None:
        """A word from the LLM (or, once it has finished, the TTS) service: the deadline on the
        next one runs from now. A service that hangs fails the reply instead of leaving it open
        for ever. Called for every token and audio chunk, so it only notes the time; one timer
        checks it (re-armed for what is left when words came meanwhile)."""
        loop = asyncio.get_running_loop()
        self._last_word = loop.time()
        if self._stall_timer is None and self._input_ended and not self.task.done():
            self._stall_timer = loop.call_later(self.options.stall_seconds, self._check_stall)

    def _check_stall(self) -> None:
        loop = asyncio.get_running_loop()
        left = self._last_word + self.options.stall_seconds - loop.time()
        if left > 0:
            self._stall_timer = loop.call_later(left, self._check_stall)
            return
        self._stall_timer = None
        service = "tts" if self._llm_done else "llm"
        self._abandon(service, grpc.StatusCode.DEADLINE_EXCEEDED, f"nothing for {self.options.stall_seconds:g} s")

    def _abandon(self, service: str, status: grpc.StatusCode, details: str) -> None:
        """Give the turn up: its calls are cancelled, and it fails with this reason."""
        if self._abandoned is None:
            self._abandoned = (service, status, details)
        for call in (self._call, self._tts_call):
            if call is not None:
                call.cancel()
        if self._call is None and not self.task.done():
            self.task.cancel()

    def hold(self) -> None:
        """Keep events and audio back until ``release()`` or ``discard()``."""
        self._holding = True

    def release(self) -> None:
        """Send what was held back, and from now on everything as it comes."""
        self._holding = False
        held, self._held = self._held, []
        for item in held:
            if isinstance(item, bytes):
                if self.timings.first_audio is None:
                    self.timings.first_audio = clock.now()
                self._write_audio(item)
                continue
            if isinstance(item, rt.ResponseDoneEvent) and isinstance(item.response, events.Response):
                item.response.parley = self._parley()  # finished while held: its timings end now
            self._emit_now(item)

    def _write_audio(self, pcm: bytes) -> None:
        if self.output_start is None:
            self.output_start = self._output.played_samples + self._output.queued_samples
        self._output.write(pcm)

    def discard(self) -> None:
        """Stop a held turn without a trace: nothing it held or would send reaches the client."""
        self._discarded = True
        self._held.clear()
        self._stop_calls()

    def continue_transcript(self, earlier: Reply) -> None:
        """Send transcription deltas only beyond what ``earlier`` (a turn this one replaces) sent."""
        self._transcript, self._partial = earlier._transcript, earlier._partial

    def user_item_committed(self) -> None:
        """The user item is committed and added: the words heard so far go out now, ahead of a
        held reply's events (they belong to the item, not to the reply)."""
        if self._item_committed or self._discarded:
            return
        self._item_committed = True
        self._send_delta(self._emit_now)
        if self._final_transcript is not None:
            self._send_final(self._final_transcript, self._emit_now)

    def _send_delta(self, emit: Callable[[ServerEvent], None]) -> None:
        """A transcription delta of what the newest partial adds to what was sent. The API's deltas
        only append: a revised partial waits for the final transcript."""
        item_id, partial = self.options.user_item_id, self._partial
        if item_id is None or not partial.startswith(self._transcript) or len(partial) <= len(self._transcript):
            return
        delta, self._transcript = partial[len(self._transcript) :], partial
        emit(
            events.make(
                rt.ConversationItemInputAudioTranscriptionDeltaEvent, item_id=item_id, content_index=0, delta=delta
            )
        )

    def _send_final(self, text: str, emit: Callable[[ServerEvent], None]) -> None:
        assert self.options.user_item_id is not None
        self._transcript = text
        emit(
            events.make(
                rt.ConversationItemInputAudioTranscriptionCompletedEvent,
                item_id=self.options.user_item_id,
                content_index=0,
                transcript=text,
                usage=_Duration(type="duration", seconds=round(self._audio_sent / 16000, 3)),
            )
        )

    def _emit(self, event: ServerEvent) -> None:
        if self._discarded:
            return
        if self._holding:
            self._held.append(event)
        else:
            self._emit_now(event)

    @property
    def reply_text(self) -> str:
        return "".join(self._text)

    @property
    def spoken_text(self) -> str:
        """The reply as the client has it: cut to what was heard after a truncation."""
        return self.reply_text if self.heard is None else self.heard

    def heard_samples(self) -> int:
        """How much of this turn's audio has been played out so far."""
        if self.output_start is None:
            return 0
        played = self._output.played_samples - self.output_start
        return max(0, min(played, self.audio_samples))

    def truncate(self, samples: int) -> str:
        """Cut the reply to its first ``samples`` of audio (what the user heard); the text."""
        self.heard = heard_text(self._segments, min(samples, self.audio_samples))
        return self.heard

    def cancel(self, reason: events.CancelReason = "client_cancelled") -> None:
        """Stop the reply now: cancel both calls and drop unplayed audio (response.cancel, or
        ``turn_detected`` at a barge-in)."""
        self.cancel_reason = reason
        if self._stop_calls():
            self._output.clear()

    def _stop_calls(self) -> bool:
        """Cancel the LLM and TTS calls (or the task, before its call is open); False if already over."""
        if self.task.done() or self._cancelled:
            return False
        self._cancelled = True
        if self._call is not None:
            self._call.cancel()
        else:
            self.task.cancel()
        if self._tts_call is not None:
            self._tts_call.cancel()
        return True

    # The calls.

    async def _write_inputs(self) -> None:
        header = conversation_pb2.TurnHeader(
            session_id=self.options.session_id,
            turn_id=self.turn_id,
            mode=self.options.mode,  # type: ignore[arg-type]
            generation=conversation_pb2.GenerationParams(max_output_tokens=self.options.max_output_tokens),
            transcribe_only=self.options.transcribe_only,
            replaces_turn_id=self.options.replaces_turn_id,
            out_of_band=self.options.out_of_band,
            without_history=self.options.out_of_band,
            user_item_ids=self.options.user_item_ids
            or ([self.options.user_item_id] if self.options.user_item_id else []),
            reply_item_id=self.item_id,
            tools=self.options.tools,
            answer_history=self.options.answer_history,
            transcription_prompt=self.options.transcription_prompt,
            transcription_language=self.options.transcription_language,
            score_end_of_turn=self.options.score_end_of_turn,
        )
        if self.options.tool_choice is not None:
            header.tool_choice.CopyFrom(self.options.tool_choice)
        if self.options.system_prompt:
            header.system_prompt = self.options.system_prompt
        if self.options.instructions is not None:
            header.instructions = self.options.instructions
        await self._call.write(conversation_pb2.RespondRequest(header=header))
        while True:
            item = await self._inputs.get()
            if item is _END:
                await self._call.write(conversation_pb2.RespondRequest(end_of_input=conversation_pb2.EndOfInput()))
                self.timings.input_done = clock.now()
                await self._call.done_writing()
                return
            await self._call.write(item)

    async def _run(self) -> None:
        if self.options.respond_at_once:
            self._announce()
        writer: asyncio.Task[None] | None = None
        try:
            await self._services.ensure_ready("llm")
            assert self._services.llm is not None, "turns are made by admitted sessions only"
            self._call = self._services.llm.Respond()
            writer = asyncio.create_task(self._write_inputs())
            writer.add_done_callback(self._on_writer_done)
            async for event in self._call:
                self._watch_for_stall()
                await self._on_llm_event(event)
            self._llm_done = True
            await writer
            if self._tts_call is not None:
                # A TTS call that already ended (it failed) refuses writes; its reader reports why.
                with contextlib.suppress(grpc.aio.AioRpcError, asyncio.InvalidStateError):
                    await self._tts_call.write(speech_pb2.SynthesizeRequest(end_of_text=speech_pb2.EndOfText()))
                    await self._tts_call.done_writing()
                assert self._tts_reader is not None
                await self._tts_reader
            if self._abandoned is not None:
                self._fail_abandoned()
            if self.status == "in_progress":
                self.status = "completed"
        except asyncio.CancelledError:
            if self._abandoned is None:
                self.status = "cancelled"
                raise
            self._fail_abandoned()
        except grpc.aio.AioRpcError as exc:
            if self._abandoned is not None:
                self._fail_abandoned()
            elif self._cancelled or exc.code() == grpc.StatusCode.CANCELLED:
                self.status = "cancelled"
            else:
                self._fail(exc)
        finally:
            self._no_words_score()
            if self._stall_timer is not None:
                self._stall_timer.cancel()
            if writer is not None:
                writer.cancel()
            if self._tts_reader is not None and not self._tts_reader.done():
                self._tts_reader.cancel()
            if self._call is not None:
                self._call.cancel()
            if self._tts_call is not None:
                self._tts_call.cancel()
            if self._response.announced:
                self._finish()

    def _on_writer_done(self, writer: asyncio.Task[None]) -> None:
        """The turn's input could not be sent (a bug, or a value protobuf refuses): fail the turn
        now, rather than leave the LLM service waiting for input that never comes."""
        if writer.cancelled() or writer.exception() is None:
            return
        log.error("turn input could not be sent", extra={"turn": self.turn_id}, exc_info=writer.exception())
        self._abandon("llm", grpc.StatusCode.INTERNAL, "the turn's input could not be sent")

    def _fail_abandoned(self) -> None:
        assert self._abandoned is not None
        service, status, details = self._abandoned
        self._fail(grpc.aio.AioRpcError(status, grpc.aio.Metadata(), grpc.aio.Metadata(), details), service)

    def _fail(self, exc: grpc.aio.AioRpcError, service: str = "llm") -> None:
        """Report a failed model call once; the first failure is the one the client hears of."""
        if self.failure is not None:
            return
        self.failure = ServiceFailure(service, exc)
        self.status = "failed"
        log.warning("turn failed", extra={"turn": self.turn_id, "service": service, "status": exc.code().name})
        metrics.SERVICE_ERRORS.labels(service=service).inc()
        self._emit(events.error(self.failure.client_code, self.failure.client_message))

    async def _on_llm_event(self, event: conversation_pb2.RespondResponse) -> None:
        kind = event.WhichOneof("event")
        item_id = self.options.user_item_id
        if kind == "user_transcript" and item_id is not None:
            transcript = event.user_transcript
            if transcript.is_final:
                if self._item_committed:
                    self._send_final(transcript.text, self._emit)
                else:
                    self._final_transcript = transcript.text
                if transcript.text.strip():
                    self._announce()
            elif transcript.text != self._partial:
                self._partial = transcript.text
                if self.options.live_transcripts:  # the words as they are heard (Parley's event)
                    self._emit(events.make(events.TranscriptPartial, item_id=item_id, transcript=transcript.text))
                if self._item_committed:
                    self._send_delta(self._emit)
        elif kind == "end_of_turn":
            if not self.words_score.done():
                self.words_score.set_result(event.end_of_turn.probability)
        elif kind == "function_call_delta":
            self._no_words_score()
            self._announce()
            self._response.call_delta(event.function_call_delta)
        elif kind == "function_call":
            self._response.call_done(event.function_call)
        elif kind == "text_delta":
            self._no_words_score()  # the score comes before the reply's first text, or not at all
            self._announce()
            if self.timings.first_text is None:
                self.timings.first_text = clock.now()
            text = event.text_delta.text
            self._text.append(text)
            self._response.text_delta(text)
            if "audio" in self.options.modalities:
                await self._speak(text)
        elif kind == "done":
            done = event.done
            self.timings.llm = dict(done.timings.durations_ms)
            self._usage = events.usage(
                done.usage.input_tokens, done.usage.cached_input_tokens, done.usage.output_tokens
            )
            if done.finish_reason == conversation_pb2.FINISH_REASON_LENGTH and self.status == "in_progress":
                self.status = "incomplete"  # a failure already reported (the TTS died) stays "failed"

    def _no_words_score(self) -> None:
        if not self.words_score.done():
            self.words_score.set_result(None)

    async def _speak(self, text: str) -> None:
        if self.failure is not None and self.failure.service == "tts":
            return  # the text still streams to the client; the error said why it is not spoken
        try:
            if self._tts_call is None:
                await self._services.ensure_ready("tts")
                self._tts_call = self._services.tts.Synthesize()
                config = speech_pb2.SynthesisConfig(
                    voice=self.options.voice,
                    sample_rate=self._output.sample_rate,
                    first_segment_max_chars=self.options.first_spoken_chars,
                )
                if self.options.speed is not None:
                    config.speed = self.options.speed
                self._tts_reader = asyncio.create_task(self._play())
                await self._tts_call.write(speech_pb2.SynthesizeRequest(config=config))
            await self._tts_call.write(speech_pb2.SynthesizeRequest(text=text))
        except grpc.aio.AioRpcError as exc:
            self._fail(exc, "tts")
        except asyncio.InvalidStateError:
            pass  # the call already ended; its reader reports why

    async def _play(self) -> None:
        """Audio from the TTS call to the output, as it comes."""
        try:
            async for response in self._tts_call:
                self._watch_for_stall()
                kind = response.WhichOneof("event")
                if kind == "audio":
                    pcm = response.audio.pcm16
                    self.audio_samples += len(pcm) // 2
                    if self._holding:
                        self._held.append(pcm)
                        continue
                    if self.timings.first_audio is None:
                        self.timings.first_audio = clock.now()
                    self._write_audio(pcm)
                elif kind == "segment":
                    segment = response.segment
                    self._segments.append((segment.text, segment.start_offset_samples, segment.end_offset_samples))
                elif kind == "done":
                    self.timings.tts = dict(response.done.timings.durations_ms)
        except grpc.aio.AioRpcError as exc:
            if not (self._cancelled or exc.code() == grpc.StatusCode.CANCELLED):
                self._fail(exc, "tts")

    # Events.

    def _announce(self) -> None:
        if self._response.announce():
            self.replied = True

    def _finish(self) -> None:
        details = None
        if self.status == "cancelled":
            details = events.status_details("cancelled", reason=self.cancel_reason)
        elif self.status == "failed" and self.failure is not None:
            details = events.status_details("failed", error=(self.failure.client_code, self.failure.client_message))
        elif self.status == "incomplete":
            details = events.status_details("incomplete", reason="max_output_tokens")
        self._response.finish(self.status, self.spoken_text, self._usage, details, self._parley())

    def _parley(self) -> dict[str, Any]:
        """Parley's additions to response.done: the turn's id, timings and how its user turn ended."""
        parley: dict[str, Any] = {"turn_id": self.turn_id, "timings_ms": self.timings.as_ms()}
        if self.timings.end_of_turn:
            parley["end_of_turn"] = self.timings.end_of_turn
        return parley


# A transcription's usage: the seconds of audio it took (the recogniser runs on the server's own
# hardware: there are no tokens to bill).
_Duration = rt.conversation_item_input_audio_transcription_completed_event.UsageTranscriptTextUsageDuration


def heard_text(segments: list[tuple[str, int, int]], samples: int) -> str:
    """The text spoken in the first ``samples`` of a reply's audio, from its spoken pieces
    (text, first sample, end sample): whole pieces, then the words of the piece playing at that
    moment in proportion to how much of it had played."""
    heard = []
    for text, start, end in segments:
        if end <= samples:
            heard.append(text.strip())
            continue
        if start < samples:
            words = text.split()
            spoken = round(len(words) * (samples - start) / max(1, end - start))
            heard.append(" ".join(words[:spoken]))
        break
    return " ".join(part for part in heard if part)


async def cancel_and_wait(reply: Reply | None) -> None:
    """Cancel a reply and wait until its calls are closed."""
    if reply is None:
        return
    reply.cancel()
    await wait_for_end(reply)


async def wait_for_end(reply: Reply) -> None:
    """Wait until a reply's task is over, however it ended. Unlike awaiting the task, a cancelled
    or failed reply does not raise here, and cancelling the waiter does (it is not swallowed as
    the reply's own cancellation would be)."""
    await asyncio.wait({reply.task})
