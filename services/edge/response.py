"""The events that describe one response, in the API's order: ``response.created``, its output
items as they fill (the assistant message with its text or audio transcript, function calls
with their arguments), and ``response.done``. A reply drives it; it only builds and emits."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from openai.types import realtime as rt
from parley.v1 import conversation_pb2

from services.edge import events
from services.edge.events import ServerEvent

if TYPE_CHECKING:
    from services.edge.reply import ReplyOptions


@dataclass
class _Call:
    """A function call item of the response, as its arguments come."""

    item_id: str
    index: int
    name: str
    arguments: str = ""
    done: bool = False


class ResponseEvents:
    """Built as the reply's words and calls come; emitted through ``emit`` (the reply's, which
    holds them back while the reply is held)."""

    def __init__(
        self,
        response_id: str,
        item_id: str,
        options: ReplyOptions,
        previous_item_id: str | None,
        emit: Callable[[ServerEvent], None],
    ) -> None:
        self.response_id = response_id
        self.item_id = item_id  # the assistant message's
        self._options = options
        self._previous_item_id = previous_item_id  # the conversation's newest item when the reply began
        self._emit = emit
        self.announced = False
        self._outputs: list[rt.ConversationItem] = []  # the response's output items, in order (as last sent)
        self._message_index: int | None = None  # the assistant message's place among them, once opened
        self._calls: dict[str, _Call] = {}  # function calls by call id

    @property
    def _audio(self) -> bool:
        return "audio" in self._options.modalities

    def response(
        self, status: events.ResponseStatus, output: list[rt.ConversationItem], **done: Any
    ) -> events.Response:
        options = self._options
        return events.response(
            self.response_id,
            status,
            options.modalities,
            output,
            conversation_id=options.conversation_id,
            metadata=options.metadata,
            max_output_tokens=options.max_output_tokens or "inf",
            voice=options.voice or None if self._audio else None,
            **done,
        )

    def announce(self) -> bool:
        """response.created, once (True the first time); without tools the assistant message
        opens with it (with tools the reply may be a function call only, and its message opens
        with its first word)."""
        if self.announced:
            return False
        self.announced = True
        self._emit(events.make(rt.ResponseCreatedEvent, response=self.response("in_progress", [])))
        if not self._options.tools:
            self._open_message()
        return True

    def text_delta(self, text: str) -> None:
        """A piece of the assistant message: its audio transcript (audio replies) or its text."""
        self._open_message()
        where = self._where()
        if self._audio:
            self._emit(events.make(rt.ResponseAudioTranscriptDeltaEvent, **where, delta=text))
        else:
            self._emit(events.make(rt.ResponseTextDeltaEvent, **where, delta=text))

    def call_delta(self, delta: conversation_pb2.FunctionCallDelta) -> None:
        call = self._calls.get(delta.call_id)
        if call is None:
            item_id = events.new_id("item")
            index = self._add_output(events.function_call_item(item_id, delta.call_id, delta.name, "", "in_progress"))
            call = self._calls[delta.call_id] = _Call(item_id, index, delta.name)
        if delta.arguments:
            call.arguments += delta.arguments
            self._emit(
                events.make(
                    rt.ResponseFunctionCallArgumentsDeltaEvent,
                    response_id=self.response_id,
                    item_id=call.item_id,
                    output_index=call.index,
                    call_id=delta.call_id,
                    delta=delta.arguments,
                )
            )

    def call_done(self, done: conversation_pb2.FunctionCall) -> None:
        call = self._calls[done.call_id]
        call.arguments, call.done = done.arguments, True
        self._emit(
            events.make(
                rt.ResponseFunctionCallArgumentsDoneEvent,
                response_id=self.response_id,
                item_id=call.item_id,
                output_index=call.index,
                call_id=done.call_id,
                name=done.name,
                arguments=done.arguments,
            )
        )
        self._done_output(
            call.index, events.function_call_item(call.item_id, done.call_id, done.name, done.arguments, "completed")
        )

    def finish(
        self,
        status: events.ResponseStatus,
        text: str,
        usage: Any,
        details: Any,
        parley: dict[str, Any],
    ) -> None:
        """The items done (the message with ``text``, what the client has of it), then response.done."""
        if not self._outputs:
            self._open_message()  # a reply with nothing in it still has its (empty) message
        item_status: events.ItemStatus = "completed" if status == "completed" else "incomplete"
        if self._message_index is not None:
            where = self._where()
            if self._audio:
                self._emit(events.make(rt.ResponseAudioDoneEvent, **where))
                self._emit(events.make(rt.ResponseAudioTranscriptDoneEvent, **where, transcript=text))
            else:
                self._emit(events.make(rt.ResponseTextDoneEvent, **where, text=text))
            part = events.content_part(self._audio, text)
            self._emit(events.make(rt.ResponseContentPartDoneEvent, **where, part=part))
            self._done_output(self._message_index, events.assistant_item(self.item_id, self._audio, text, item_status))
        for call_id, call in self._calls.items():
            if not call.done:  # cut short (cancelled, or the service failed)
                item = events.function_call_item(call.item_id, call_id, call.name, call.arguments, "incomplete")
                self._done_output(call.index, item)
        response = self.response(status, list(self._outputs), usage=usage, status_details=details, parley=parley)
        self._emit(events.make(rt.ResponseDoneEvent, response=response))

    def _where(self) -> dict[str, Any]:
        index = self._message_index if self._message_index is not None else 0
        return {"response_id": self.response_id, "item_id": self.item_id, "output_index": index, "content_index": 0}

    def _add_output(self, item: rt.ConversationItem) -> int:
        """A new output item of the response (and of the conversation): its output index."""
        index = len(self._outputs)
        self._outputs.append(item)
        self._emit(
            events.make(rt.ResponseOutputItemAddedEvent, response_id=self.response_id, output_index=index, item=item)
        )
        if self._options.conversation_id is not None:  # an out-of-band response adds nothing to it
            self._emit(events.make(rt.ConversationItemAdded, previous_item_id=self._previous_output(), item=item))
        return index

    def _previous_output(self) -> str | None:
        if len(self._outputs) > 1:
            return self._outputs[-2].id
        return self._options.user_item_id or self._previous_item_id  # a voice turn follows its user item

    def _done_output(self, index: int, item: rt.ConversationItem) -> None:
        self._outputs[index] = item
        self._emit(
            events.make(rt.ResponseOutputItemDoneEvent, response_id=self.response_id, output_index=index, item=item)
        )
        if self._options.conversation_id is not None:
            self._emit(events.make(rt.ConversationItemDone, item=item))

    def _open_message(self) -> None:
        if self._message_index is not None:
            return
        self._message_index = self._add_output(events.assistant_item(self.item_id, self._audio, None, "in_progress"))
        part = events.content_part(self._audio, "")
        self._emit(events.make(rt.ResponseContentPartAddedEvent, **self._where(), part=part))
