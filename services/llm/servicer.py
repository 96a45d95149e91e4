"""``parley.v1.ConversationService``: turns of a session, streamed in and out."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import grpc
import numpy as np
from parley.v1 import audio_pb2, conversation_pb2, conversation_pb2_grpc

from services.common.languages import listed
from services.common.memory import FreedMemoryTrimmer
from services.common.server import InvalidRequest, Lifecycle, RequestError
from services.common.streams import StreamGuard, StreamMetrics
from services.common.words import bare_words, only_hesitation
from services.llm import metrics
from services.llm.asr import SpeechRecognizer, TurnTranscriber
from services.llm.backends import (
    EndOfTurnScore,
    GenerationParams,
    GenerationRequest,
    GenerationStats,
    LanguageModel,
)
from services.llm.backends.tools import ToolUse
from services.llm.reply import ReplyStream
from services.llm.sessions import Message, Session, SessionCapacityError, SessionStore
from services.llm.settings import LlmSettings
from services.llm.turn import (
    TurnInput,
    check_session_id,
    history_message,
    tool_use,
    validate_header,
)

log = logging.getLogger(__name__)

# Said, not generated, when images reach a model that cannot see them.
CANNOT_SEE_IMAGES = "I can't see images: the model I run on reads text only."
_INPUT_DONE = object()
# The words' score of a hesitation alone ("Um,"): not the end of a turn, and no model asked.
HESITATION_SCORE = EndOfTurnScore(probability=0.0, inference_ms=0.0, computed_tokens=0)
FINISH_REASONS = {
    "stop": conversation_pb2.FINISH_REASON_STOP,
    "length": conversation_pb2.FINISH_REASON_LENGTH,
    "cancelled": conversation_pb2.FINISH_REASON_CANCELLED,
    "no_reply": conversation_pb2.FINISH_REASON_NO_REPLY,
}


class ConversationServicer(conversation_pb2_grpc.ConversationServiceServicer):
    def __init__(
        self,
        settings: LlmSettings,
        engine: LanguageModel,
        recognizer: SpeechRecognizer | None,
        sessions: SessionStore,
        lifecycle: Lifecycle,
    ) -> None:
        self._settings = settings
        self._engine = engine
        self._trimmer = FreedMemoryTrimmer()
        self._recognizer = recognizer
        self._sessions = sessions
        self._guard = StreamGuard(
            "LLM",
            lifecycle,
            StreamMetrics(errors=metrics.TURN_ERRORS),
            draining_message="the LLM server is shutting down; retry the turn",
        )
        self.active_turns = 0

    # -- Respond ---------------------------------------------------------------------------

    async def Respond(  # noqa: N802 - the gRPC method name
        self, request_iterator: AsyncIterator[conversation_pb2.RespondRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[conversation_pb2.RespondResponse]:
        async with contextlib.aclosing(self._guard.serve(request_iterator, context, self._respond)) as responses:
            async for response in responses:
                yield response

    async def _respond(
        self, requests: AsyncIterator[conversation_pb2.RespondRequest], stream_id: int
    ) -> AsyncGenerator[conversation_pb2.RespondResponse, None]:
        try:
            first = await asyncio.wait_for(anext(requests, None), self._settings.header_wait_seconds)
        except TimeoutError:
            raise RequestError(
                f"no TurnHeader within {self._settings.header_wait_seconds:g} s of the call's start",
                grpc.StatusCode.DEADLINE_EXCEEDED,
            ) from None
        if first is None or first.WhichOneof("request") != "header":
            raise InvalidRequest("the first request of a turn must be a TurnHeader")
        # Closed explicitly, innermost first, when the call ends early (a cancelled turn):
        # left to the garbage collector, the session could be let go before the reply is kept.
        async with contextlib.aclosing(self._turn(first.header, requests)) as responses:
            async for response in responses:
                yield response

    async def _turn(
        self, header: conversation_pb2.TurnHeader, requests: AsyncIterator[conversation_pb2.RespondRequest]
    ) -> AsyncGenerator[conversation_pb2.RespondResponse, None]:
        params = validate_header(header, self._settings)
        self._check_language(header.transcription_language)
        tools = tool_use(header)
        is_new = self._sessions.get(header.session_id) is None
        try:
            session = self._sessions.open(header.session_id)
        except SessionCapacityError as exc:
            raise RequestError(str(exc), grpc.StatusCode.RESOURCE_EXHAUSTED) from None
        metrics.SESSIONS_ACTIVE.set(len(self._sessions))
        completed = False
        try:
            async with self._session_turn(session):
                if header.HasField("system_prompt"):
                    session.system_prompt = header.system_prompt
                if header.replaces_turn_id:
                    session.drop_turn(header.replaces_turn_id)
                yield conversation_pb2.RespondResponse(
                    accepted=conversation_pb2.TurnAccepted(
                        session_id=session.id,
                        turn_id=header.turn_id,
                        history_turns=session.turns,
                        model=self._engine.name,
                    )
                )
                async with contextlib.aclosing(self._run_turn(session, header, params, tools, requests)) as responses:
                    async for response in responses:
                        yield response
                session.last_used = time.monotonic()
                completed = True
        finally:
            if is_new and not completed and not session.history:
                # A first turn that failed leaves nothing worth a session slot.
                self._sessions.end(session.id)
                metrics.SESSIONS_ACTIVE.set(len(self._sessions))

    @contextlib.asynccontextmanager
    async def _session_turn(self, session: Session) -> AsyncIterator[None]:
        """One turn of a session at a time; a new one waits briefly for a cancelled one to wind up."""
        try:
            await asyncio.wait_for(session.lock.acquire(), self._settings.turn_wait_seconds)
        except TimeoutError:
            raise RequestError(
                f"another turn of session {session.id} is still in progress", grpc.StatusCode.ABORTED
            ) from None
        self.active_turns += 1
        metrics.TURNS_ACTIVE.inc()
        try:
            yield
        finally:
            self.active_turns -= 1
            metrics.TURNS_ACTIVE.dec()
            session.lock.release()

    async def _run_turn(
        self,
        session: Session,
        header: conversation_pb2.TurnHeader,
        params: GenerationParams,
        tools: ToolUse | None,
        requests: AsyncIterator[conversation_pb2.RespondRequest],
    ) -> AsyncGenerator[conversation_pb2.RespondResponse, None]:
        partials: asyncio.Queue[object] = asyncio.Queue()
        transcriber = None
        if self._recognizer is not None and not self._engine.hears_audio:
            transcriber = TurnTranscriber(
                self._recognizer,
                self._settings.asr_partial_interval_ms,
                on_partial=lambda text: partials.put_nowait(
                    conversation_pb2.RespondResponse(user_transcript=conversation_pb2.UserTranscript(text=text))
                ),
                prompt=header.transcription_prompt,
                language=header.transcription_language,
            )
        turn = TurnInput(self._settings, header.mode, transcriber)
        reader = asyncio.create_task(self._read_input(requests, turn, partials))
        try:
            # Partial transcripts go out while the input is still arriving.
            while (item := await partials.get()) is not _INPUT_DONE:
                if isinstance(item, BaseException):
                    raise item
                assert isinstance(item, conversation_pb2.RespondResponse)
                yield item
            input_ended = time.perf_counter()
            if not turn.has_input and not header.answer_history:
                raise InvalidRequest(
                    "the turn has no input: send audio, text or images before EndOfInput (or set answer_history "
                    "to reply to the history as it stands)"
                )
            transcript, timings = "", {}
            if transcriber is not None and turn.audio_samples:
                transcript = await transcriber.final()
                timings["asr"] = (time.perf_counter() - input_ended) * 1000
                metrics.ASR_SECONDS.observe(timings["asr"] / 1000)
                yield conversation_pb2.RespondResponse(
                    user_transcript=conversation_pb2.UserTranscript(text=transcript, is_final=True)
                )
            async with contextlib.aclosing(
                self._reply(session, header, params, tools, turn, transcript, timings)
            ) as responses:
                async for response in responses:
                    yield response
        finally:
            reader.cancel()
            if transcriber is not None:
                transcriber.cancel()

    async def _read_input(
        self,
        requests: AsyncIterator[conversation_pb2.RespondRequest],
        turn: TurnInput,
        out: asyncio.Queue[object],
    ) -> None:
        try:
            async for request in requests:
                kind = request.WhichOneof("request")
                if kind == "audio":
                    turn.add_audio(request.audio)
                elif kind == "image":
                    turn.add_image(request.image)
                elif kind == "text":
                    turn.add_text(request.text.text)
                elif kind == "end_of_unit":
                    turn.end_unit()
                elif kind == "cut_reply":
                    if len(request.cut_reply.heard_text) > self._settings.max_turn_text_chars:
                        raise InvalidRequest("cut_reply.heard_text is longer than the text limit")
                    turn.cuts.append((request.cut_reply.turn_id, request.cut_reply.heard_text))
                elif kind == "context":
                    turn.add_context(request.context)
                elif kind == "end_of_input":
                    break
                elif kind == "header":
                    raise InvalidRequest("a turn has one TurnHeader; open a new call for the next turn")
                else:
                    raise InvalidRequest("empty RespondRequest")
            else:
                raise InvalidRequest("the input ended without EndOfInput")
            turn.finish_audio()
            out.put_nowait(_INPUT_DONE)
        except Exception as exc:
            out.put_nowait(exc)

    async def _reply(
        self,
        session: Session,
        header: conversation_pb2.TurnHeader,
        params: GenerationParams,
        tools: ToolUse | None,
        turn: TurnInput,
        transcript: str,
        timings: dict[str, float],
    ) -> AsyncGenerator[conversation_pb2.RespondResponse, None]:
        for turn_id, heard_text in turn.cuts:  # what the user heard of replies they spoke over
            heard = session.reply_of(turn_id)
            if heard is not None:
                heard.text = heard_text
        user_text = "\n".join([*turn.texts, transcript] if transcript else turn.texts).strip()
        continues = not turn.has_input  # answers the history as it stands
        notice = CANNOT_SEE_IMAGES if turn.images and not self._engine.sees_images else ""
        stats = GenerationStats(finish_reason="no_reply")
        reply = ReplyStream(tools, prefix=notice)
        if notice:
            yield conversation_pb2.RespondResponse(text_delta=conversation_pb2.TextDelta(text=notice))
        started = time.perf_counter()
        wants_reply = (bool(user_text) or continues) and not header.transcribe_only
        words = bare_words(user_text) if header.score_end_of_turn and self.scores_end_of_turn else ""
        if words and only_hesitation(words):  # no model asked: a hesitation alone never ends a turn
            yield self._scored(HESITATION_SCORE)
            words = ""
        # Whether this turn goes into the history: not when it fails before anything is said.
        recorded = bool(notice) or (bool(user_text) and not wants_reply)
        try:
            if wants_reply:
                messages = self._fit_context(
                    session, header, turn.context, None if continues else user_text, params, tools
                )
                recorded = True
                request = GenerationRequest(
                    messages=messages,
                    params=params,
                    images=turn.images if self._engine.sees_images else [],
                    audio=np.concatenate(turn.audio_16k) if self._engine.hears_audio and turn.audio_16k else None,
                    tools=tools,
                    json_schema=tools.call_schema() if tools is not None else None,
                    score_words=words or None,
                )
                async with contextlib.aclosing(self._engine.generate(request, session.engine_state, stats)) as deltas:
                    async for delta in deltas:
                        if isinstance(delta, EndOfTurnScore):
                            yield self._scored(delta)
                            continue
                        if "first_token" not in timings:
                            timings["first_token"] = (time.perf_counter() - started) * 1000
                            metrics.FIRST_TOKEN_SECONDS.observe(timings["first_token"] / 1000)
                        for response in reply.push(delta):
                            yield response
                for response in reply.flush():
                    yield response
            elif words:  # no reply to read the score off: scored on its own
                yield self._scored(await self._score(session, words))
            if not wants_reply and notice:
                stats.finish_reason = "stop"
        except asyncio.CancelledError:
            stats.finish_reason = "cancelled"
            metrics.CANCELLATIONS.inc()
            raise
        finally:
            reply_text = reply.text
            if recorded and not header.out_of_band:
                # What was said so far stays in the history, a cancelled reply included.
                if not continues:
                    user = user_text or "(an image)"
                    session.history.append(Message("user", user, header.turn_id, tuple(header.user_item_ids)))
                if wants_reply or notice:
                    reply_ids = (header.reply_item_id,) if header.reply_item_id else ()
                    session.history.append(
                        Message("assistant", reply_text, header.turn_id, reply_ids, tuple(reply.calls))
                    )
            self._account(stats, started, timings)
        yield conversation_pb2.RespondResponse(
            done=conversation_pb2.TurnDone(
                finish_reason=FINISH_REASONS[stats.finish_reason],
                usage=conversation_pb2.Usage(
                    input_tokens=stats.input_tokens,
                    cached_input_tokens=stats.cached_input_tokens,
                    output_tokens=stats.output_tokens,
                    input_audio_seconds=turn.audio_seconds,
                ),
                timings=audio_pb2.Timings(durations_ms=timings),
                reply_text=reply_text,
            )
        )

    def _fit_context(
        self,
        session: Session,
        header: conversation_pb2.TurnHeader,
        context: list[Message],
        user_text: str | None,
        params: GenerationParams,
        tools: ToolUse | None,
    ) -> list[dict[str, Any]]:
        """The prompt messages, dropping the session's oldest messages until prompt and reply fit:
        the system prompt (this turn's instructions if it has them), the history (unless the turn
        brings its own context), the turn's context messages and its input."""
        budget = self._settings.max_context_tokens - params.max_output_tokens
        system_prompt = header.instructions if header.HasField("instructions") else None

        def render() -> list[dict[str, Any]]:
            messages = session.messages(system_prompt=system_prompt, history=not header.without_history)
            messages += [m.as_chat() for m in context]
            return messages if user_text is None else [*messages, {"role": "user", "content": user_text}]

        messages = render()
        while self._engine.count_tokens(messages, tools) > budget:
            if header.without_history or not session.history:
                raise InvalidRequest("the turn's input alone is longer than the model's context allows")
            session.history.pop(0)
            messages = render()
        return messages

    def _account(self, stats: GenerationStats, started: float, timings: dict[str, float]) -> None:
        elapsed = time.perf_counter() - started
        timings["prefill"] = stats.prefill_seconds * 1000
        timings["generation"] = elapsed * 1000
        metrics.TURNS.labels(stats.finish_reason).inc()
        metrics.INPUT_TOKENS.inc(stats.input_tokens)
        metrics.CACHED_INPUT_TOKENS.inc(stats.cached_input_tokens)
        metrics.OUTPUT_TOKENS.inc(stats.output_tokens)
        metrics.SHARED_STEP_TOKENS.inc(stats.shared_step_tokens)
        decode_seconds = elapsed - timings.get("first_token", elapsed * 1000) / 1000
        if stats.output_tokens > 1 and decode_seconds > 0:
            metrics.DECODE_TOKENS_PER_SECOND.observe((stats.output_tokens - 1) / decode_seconds)

    # -- Session RPCs ----------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _holding(self, session_id: str, context: grpc.aio.ServicerContext) -> AsyncIterator[Session]:
        """The session, with no turn of it running meanwhile (NOT_FOUND or ABORTED otherwise)."""
        session = self._sessions.get(session_id)
        if session is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no session {session_id!r} on this replica")
        assert session is not None
        try:
            await asyncio.wait_for(session.lock.acquire(), self._settings.turn_wait_seconds)
        except TimeoutError:
            await context.abort(grpc.StatusCode.ABORTED, f"a turn of session {session_id} is still in progress")
        try:
            yield session
        finally:
            session.lock.release()

    async def TruncateReply(  # noqa: N802
        self, request: conversation_pb2.TruncateReplyRequest, context: grpc.aio.ServicerContext
    ) -> conversation_pb2.TruncateReplyResponse:
        async with self._holding(request.session_id, context) as session:
            reply = session.reply_of(request.turn_id)
            if reply is None:
                await context.abort(grpc.StatusCode.NOT_FOUND, f"no reply of turn {request.turn_id!r} in the session")
            assert reply is not None
            reply.text = request.heard_text  # the cache is cropped where the tokens now differ
        return conversation_pb2.TruncateReplyResponse()

    async def AddMessages(  # noqa: N802
        self, request: conversation_pb2.AddMessagesRequest, context: grpc.aio.ServicerContext
    ) -> conversation_pb2.AddMessagesResponse:
        if len(request.messages) > 64:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "at most 64 messages at a time")
        try:
            check_session_id(request.session_id)
            messages = [history_message(m, self._settings) for m in request.messages]
        except InvalidRequest as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        if self._sessions.get(request.session_id) is None:
            try:
                self._sessions.open(request.session_id)
            except SessionCapacityError as exc:
                await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc))
            metrics.SESSIONS_ACTIVE.set(len(self._sessions))
        async with self._holding(request.session_id, context) as session:
            at = len(session.history)
            if request.after_item_id:
                index = session.index_of(request.after_item_id)
                if index is None:
                    await context.abort(
                        grpc.StatusCode.NOT_FOUND, f"no message {request.after_item_id!r} in the session"
                    )
                assert index is not None
                at = index + 1
            session.history[at:at] = messages
            return conversation_pb2.AddMessagesResponse(history_messages=len(session.history))

    async def DeleteMessage(  # noqa: N802
        self, request: conversation_pb2.DeleteMessageRequest, context: grpc.aio.ServicerContext
    ) -> conversation_pb2.DeleteMessageResponse:
        async with self._holding(request.session_id, context) as session:
            if not session.delete(request.item_id):
                await context.abort(grpc.StatusCode.NOT_FOUND, f"no message {request.item_id!r} in the session")
        return conversation_pb2.DeleteMessageResponse()

    async def ResetSession(  # noqa: N802
        self, request: conversation_pb2.ResetSessionRequest, context: grpc.aio.ServicerContext
    ) -> conversation_pb2.ResetSessionResponse:
        async with self._holding(request.session_id, context) as session:
            self._sessions.reset(session.id)
        return conversation_pb2.ResetSessionResponse()

    async def EndSession(  # noqa: N802
        self, request: conversation_pb2.EndSessionRequest, context: grpc.aio.ServicerContext
    ) -> conversation_pb2.EndSessionResponse:
        async with self._holding(request.session_id, context) as session:
            self._sessions.end(session.id)
        metrics.SESSIONS_ACTIVE.set(len(self._sessions))
        self._trimmer.soon()  # its KV cache is free now: give the memory back
        return conversation_pb2.EndSessionResponse()

    async def ScoreEndOfTurn(  # noqa: N802
        self, request: conversation_pb2.ScoreEndOfTurnRequest, context: grpc.aio.ServicerContext
    ) -> conversation_pb2.ScoreEndOfTurnResponse:
        transcript = request.transcript.strip()
        if not transcript or len(transcript) > self._settings.max_turn_text_chars:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"transcript must be 1-{self._settings.max_turn_text_chars} characters of the user's words",
            )
        if not self.scores_end_of_turn:
            await context.abort(
                grpc.StatusCode.FAILED_PRECONDITION, f"the {self._engine.name} engine does not score ends of turn"
            )
        # No lock: a turn of the session may be running (an answer begun at the pause being
        # judged); the engine computes the score between its steps and leaves its cache as it was.
        session = self._sessions.get(request.session_id) or Session(
            request.session_id, self._engine.new_session_state(), self._settings.system_prompt
        )  # unknown: after the system prompt alone, and nothing kept
        result = HESITATION_SCORE if only_hesitation(transcript) else await self._score(session, transcript)
        return conversation_pb2.ScoreEndOfTurnResponse(
            probability=result.probability, inference_ms=result.inference_ms, computed_tokens=result.computed_tokens
        )

    @property
    def scores_end_of_turn(self) -> bool:
        return hasattr(self._engine, "end_of_turn_probability")

    async def _score(self, session: Session, words: str) -> EndOfTurnScore:
        """The words' end-of-turn score on their own, after the session's conversation."""
        score: Any = self._engine.end_of_turn_probability  # type: ignore[attr-defined]
        result: EndOfTurnScore = await score(session.messages(words), session.engine_state)
        metrics.END_OF_TURN_SCORE_SECONDS.observe(result.inference_ms / 1000)
        return result

    @staticmethod
    def _scored(score: EndOfTurnScore) -> conversation_pb2.RespondResponse:
        return conversation_pb2.RespondResponse(
            end_of_turn=conversation_pb2.EndOfTurnScore(probability=score.probability, inference_ms=score.inference_ms)
        )

    async def GetLoad(  # noqa: N802
        self, request: conversation_pb2.GetLoadRequest, context: grpc.aio.ServicerContext
    ) -> conversation_pb2.GetLoadResponse:
        return conversation_pb2.GetLoadResponse(
            active_sessions=len(self._sessions),
            max_sessions=self._sessions.max_sessions,
            active_turns=self.active_turns,
            max_output_tokens=self._settings.max_output_tokens,
            max_turn_audio_seconds=self._settings.max_turn_audio_seconds,
            max_turn_text_chars=self._settings.max_turn_text_chars,
            max_turn_images=self._settings.max_turn_images,
            transcription_languages=self._languages(),
            scores_end_of_turn=self.scores_end_of_turn,
        )

    def _languages(self) -> list[str]:
        """The recogniser's languages; none when the language model hears audio itself."""
        if self._recognizer is None or self._engine.hears_audio:
            return []
        return self._recognizer.languages

    def _check_language(self, language: str) -> None:
        known = self._languages()
        if language and known and language not in known:
            raise InvalidRequest(
                f"transcription_language {language!r} is not one this recogniser knows ({listed(known)})"
            )

    async def expire_idle_sessions(self) -> None:
        """Free idle sessions, forever (a background task)."""
        interval = min(30.0, self._settings.session_idle_seconds / 4)
        while True:
            await asyncio.sleep(interval)
            for session_id in self._sessions.expire_idle():
                log.info("session expired", extra={"session": session_id})
                self._trimmer.soon()
            metrics.SESSIONS_ACTIVE.set(len(self._sessions))
