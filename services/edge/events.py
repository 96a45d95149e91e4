"""Server events of the OpenAI Realtime API (GA), built from the official SDK's own types.

Every event the edge sends is an instance of the ``openai`` package's pydantic model for its
type (``openai.types.realtime``), so a field of the wrong name, type or value fails where the
event is made, not in a client. The SDK is pinned (requirements/constraints.txt): its types are
the schema Parley conforms to. Parley's additions are extra fields named ``parley`` (the SDK's
models keep extra fields) and events of its own, ``parley.*``, sent only to a session waiting in
the admission queue (``parley.queue.*``) or asking for them (``parley.live_transcripts``).
"""

from __future__ import annotations

import secrets
from typing import Any, Literal, TypeVar

from openai.types import realtime as rt
from openai.types.realtime import (
    realtime_conversation_item_assistant_message as assistant_message,
)
from openai.types.realtime import (
    realtime_conversation_item_system_message as system_message,
)
from openai.types.realtime import (
    realtime_conversation_item_user_message as user_message,
)
from openai.types.realtime import realtime_response_status as response_status
from openai.types.realtime.realtime_server_event import (
    ConversationItemRetrieved,
    OutputAudioBufferCleared,
    OutputAudioBufferStarted,
    OutputAudioBufferStopped,
)
from pydantic import BaseModel, ConfigDict

__all__ = [
    "ConversationItemRetrieved",
    "OutputAudioBufferCleared",
    "OutputAudioBufferStarted",
    "OutputAudioBufferStopped",
]

Event = dict[str, Any]  # an event as it goes on the wire (JSON object)
ItemStatus = Literal["completed", "incomplete", "in_progress"]
ResponseStatus = Literal["completed", "cancelled", "failed", "incomplete", "in_progress"]
Modality = Literal["audio", "text"]
CancelReason = Literal["turn_detected", "client_cancelled"]
ServerEvent = BaseModel  # an SDK server event, or one of Parley's below
E = TypeVar("E", bound=BaseModel)


def new_id(prefix: str) -> str:
    """An id in the API's style, e.g. ``item_5f1c...``."""
    return f"{prefix}_{secrets.token_hex(10)}"


def _type_of(model: type[BaseModel]) -> str:
    return model.model_fields["type"].annotation.__args__[0]  # type: ignore[union-attr]


def make(model: type[E], **fields: Any) -> E:
    """A server event of ``model``'s type with a new event id; validated as it is made."""
    return model(type=_type_of(model), event_id=new_id("event"), **fields)


def to_wire(event: BaseModel) -> Event:
    """The event as JSON: the fields that were set (a field set to None is sent as null). Objects
    are written as what they are, so Parley's subclasses keep their fields."""
    return event.model_dump(mode="json", exclude_unset=True, serialize_as_any=True)


# Parley's additions to the API's objects: the SDK's types with Parley's fields declared.


class SessionObject(rt.RealtimeSessionCreateRequest):
    """The session of ``session.created`` / ``session.updated``, with its id and Parley's settings."""

    id: str
    object: Literal["realtime.session"]
    parley: dict[str, Any]


class Response(rt.RealtimeResponse):
    """A response object; ``response.done``'s carries the server's timings (README)."""

    parley: dict[str, Any] | None = None


class ConversationItemTruncated(rt.ConversationItemTruncatedEvent):
    """What the truncated reply says now, in ``parley.transcript``."""

    parley: dict[str, Any]


# Parley's own events.


class _ParleyEvent(BaseModel):
    model_config = ConfigDict(extra="forbid")
    event_id: str


class QueueUpdated(_ParleyEvent):
    """The session waits for a free LLM replica: where it is in line."""

    type: Literal["parley.queue.updated"]
    position: int
    queue_length: int
    eta_seconds: float


class QueueAdmitted(_ParleyEvent):
    """The session has its replica and can talk."""

    type: Literal["parley.queue.admitted"]
    waited_seconds: float


class TranscriptPartial(_ParleyEvent):
    """The user's words so far, while they speak (whole, and revisable, unlike the API's deltas,
    which start only once the item is committed). Sent to sessions that set
    ``parley.live_transcripts``."""

    type: Literal["parley.input_audio_transcription.partial"]
    item_id: str
    transcript: str


PARLEY_EVENTS: tuple[type[_ParleyEvent], ...] = (QueueUpdated, QueueAdmitted, TranscriptPartial)


# Errors.


def error(
    code: str,
    message: str,
    *,
    kind: str = "server_error",
    param: str | None = None,
    event_id: str | None = None,
) -> rt.RealtimeErrorEvent:
    """An ``error`` event; ``event_id`` is the client event it answers, if any."""
    return make(
        rt.RealtimeErrorEvent,
        error=rt.RealtimeError(type=kind, code=code, message=message, param=param, event_id=event_id),
    )


# Conversation items.

UserContent = user_message.Content


def user_item(item_id: str, content: list[UserContent], status: ItemStatus = "completed") -> rt.ConversationItem:
    return rt.RealtimeConversationItemUserMessage(
        id=item_id, object="realtime.item", type="message", status=status, role="user", content=content
    )


def system_item(item_id: str, text: str) -> rt.ConversationItem:
    return rt.RealtimeConversationItemSystemMessage(
        id=item_id,
        object="realtime.item",
        type="message",
        status="completed",
        role="system",
        content=[system_message.Content(type="input_text", text=text)],
    )


def assistant_item(item_id: str, audio: bool, text: str | None, status: ItemStatus) -> rt.ConversationItem:
    """An assistant message: no content while it is being written (``text`` None), else one part
    (its transcript for audio, its text otherwise)."""
    content = []
    if text is not None:
        part = (
            assistant_message.Content(type="output_audio", transcript=text)
            if audio
            else assistant_message.Content(type="output_text", text=text)
        )
        content.append(part)
    return rt.RealtimeConversationItemAssistantMessage(
        id=item_id, object="realtime.item", type="message", status=status, role="assistant", content=content
    )


def function_call_item(
    item_id: str, call_id: str, name: str, arguments: str, status: ItemStatus
) -> rt.ConversationItem:
    return rt.RealtimeConversationItemFunctionCall(
        id=item_id,
        object="realtime.item",
        type="function_call",
        status=status,
        call_id=call_id,
        name=name,
        arguments=arguments,
    )


def function_call_output_item(item_id: str, call_id: str, output: str) -> rt.ConversationItem:
    return rt.RealtimeConversationItemFunctionCallOutput(
        id=item_id,
        object="realtime.item",
        type="function_call_output",
        status="completed",
        call_id=call_id,
        output=output,
    )


def content_part(audio: bool, text: str) -> dict[str, Any]:
    """A ``response.content_part.*`` part (the API names these ``audio`` / ``text``)."""
    return {"type": "audio", "transcript": text} if audio else {"type": "text", "text": text}


# Responses.


def response(
    response_id: str,
    status: ResponseStatus,
    modalities: list[Modality],
    output: list[rt.ConversationItem],
    *,
    conversation_id: str | None,
    metadata: dict[str, str] | None = None,
    max_output_tokens: int | Literal["inf"] = "inf",
    voice: str | None = None,
    usage: rt.RealtimeResponseUsage | None = None,
    status_details: response_status.RealtimeResponseStatus | None = None,
    parley: dict[str, Any] | None = None,
) -> Response:
    audio = rt.realtime_response.Audio(output=rt.realtime_response.AudioOutput(voice=voice)) if voice else None
    response = Response(
        id=response_id,
        object="realtime.response",
        status=status,
        status_details=status_details,
        output=output,
        output_modalities=modalities,
        conversation_id=conversation_id,
        max_output_tokens=max_output_tokens,
        audio=audio,
        usage=usage,
        metadata=metadata,
    )
    if parley is not None:
        response.parley = parley  # set only when given: a response.created has none
    return response


def status_details(
    kind: Literal["cancelled", "incomplete", "failed"],
    reason: CancelReason | Literal["max_output_tokens"] | None = None,
    error: tuple[str, str] | None = None,
) -> response_status.RealtimeResponseStatus:
    """Why a response ended as it did; ``error`` is (code, message) of a failed one."""
    failure = response_status.Error(type="server_error", code=error[0], message=error[1]) if error else None
    return response_status.RealtimeResponseStatus(type=kind, reason=reason, error=failure)


def usage(input_tokens: int, cached_tokens: int, output_tokens: int) -> rt.RealtimeResponseUsage:
    return rt.RealtimeResponseUsage(
        total_tokens=input_tokens + output_tokens,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        input_token_details=rt.realtime_response_usage_input_token_details.RealtimeResponseUsageInputTokenDetails(
            cached_tokens=cached_tokens, text_tokens=input_tokens, audio_tokens=0
        ),
        output_token_details=rt.realtime_response_usage_output_token_details.RealtimeResponseUsageOutputTokenDetails(
            text_tokens=output_tokens, audio_tokens=0
        ),
    )
