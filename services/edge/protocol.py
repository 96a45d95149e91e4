"""The client events of the OpenAI Realtime API (GA) that Parley accepts, as pydantic models.

Parsing is strict: an unknown event type, an unknown field or a wrong value becomes an
``error`` event naming what was wrong, never silence. Every field the API documents is accepted
(tests/unit/test_edge_protocol.py checks them against the official SDK's types); the fields
Parley has no use for (tracing, prompt, ...) are validated with the SDK's own types and reported
with their effective value in ``session.updated`` (see the README). Parley's own session
settings live in one extra object, ``session.parley``.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Annotated, Any, Literal

from openai.types.realtime import (
    RealtimeReasoning,
    RealtimeTracingConfig,
    RealtimeTruncation,
    realtime_audio_config_input,
    realtime_tools_config_union,
)
from openai.types.responses.response_prompt import ResponsePrompt
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    TypeAdapter,
    ValidationError,
    field_validator,
)

from services.common.limits import MAX_OUTPUT_TOKENS_API, MAX_SPEECH_SPEED, MIN_SPEECH_SPEED
from services.edge import events

# Audio in events is base64 PCM16 mono at 24 kHz, as in the OpenAI API.
REALTIME_AUDIO_RATE = 24000
# One append carries at most 15 MiB of base64 in OpenAI's API; Parley takes at most 10 s of audio.
MAX_APPEND_SECONDS = 10


# A reply's length limit as the API takes it: 1-4096 tokens or "inf" (the LLM replica's own
# limit, which may be lower, is checked by the session when the value is set).
OutputTokens = Annotated[int, Field(ge=1, le=MAX_OUTPUT_TOKENS_API, strict=True)] | Literal["inf"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AudioFormat(_Strict):
    type: Literal["audio/pcm"] = "audio/pcm"
    rate: Literal[24000] = 24000


class TurnDetection(_Strict):
    type: Literal["server_vad", "semantic_vad"] = "server_vad"
    threshold: float = Field(0.5, gt=0, lt=1)
    prefix_padding_ms: int = Field(300, ge=0, le=2000)
    silence_duration_ms: int = Field(500, ge=0, le=10_000)
    eagerness: Literal["low", "medium", "high", "auto"] | None = None
    create_response: bool = True
    interrupt_response: bool = True
    idle_timeout_ms: int | None = Field(None, ge=5000, le=30 * 60 * 1000)


class Transcription(_Strict):
    model: str | None = None
    language: str | None = Field(None, max_length=16)
    prompt: str | None = Field(None, max_length=2000)
    delay: Literal["minimal", "low", "medium", "high", "xhigh"] | None = None
    keywords: list[str] | None = Field(None, max_length=100)
    languages: list[str] | None = Field(None, max_length=16)


class AudioInput(_Strict):
    format: AudioFormat | None = None
    transcription: Transcription | None = None
    turn_detection: TurnDetection | None = None
    noise_reduction: realtime_audio_config_input.NoiseReduction | None = None


class VoiceId(_Strict):
    id: str = Field(max_length=128)


class AudioOutput(_Strict):
    format: AudioFormat | None = None
    voice: str | VoiceId | None = Field(None, max_length=128)
    speed: float | None = Field(None, ge=MIN_SPEECH_SPEED, le=MAX_SPEECH_SPEED)  # the TTS service's range


class AudioConfig(_Strict):
    input: AudioInput | None = None
    output: AudioOutput | None = None


class ParleySettings(_Strict):
    """Parley's own session settings (the ``session.parley`` object)."""

    mode: Literal["chat", "half_duplex", "full_duplex", "omni"] | None = None
    video_frames_per_second: float | None = Field(None, gt=0, le=5)
    record: bool | None = None
    live_transcripts: bool | None = None  # parley.input_audio_transcription.partial events


class FunctionTool(_Strict):
    type: Literal["function"] = "function"
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    description: str | None = Field(None, max_length=4000)
    parameters: dict[str, Any] | None = None


class ToolChoiceFunction(_Strict):
    type: Literal["function"]
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")


class ToolChoiceMcp(_Strict):
    type: Literal["mcp"]
    server_label: str
    name: str | None = None


Tool = Annotated[FunctionTool | realtime_tools_config_union.Mcp, Field(discriminator="type")]


def _named_function(value: object) -> object:
    """A bare function name (the OpenAI Agents SDK sends one) stands for that function."""
    if isinstance(value, str) and value not in ("auto", "none", "required"):
        return {"type": "function", "name": value}
    return value


ToolChoice = Annotated[
    Literal["auto", "none", "required"] | ToolChoiceFunction | ToolChoiceMcp, BeforeValidator(_named_function)
]


class SessionConfig(_Strict):
    type: Literal["realtime"] = "realtime"
    model: str | None = None
    instructions: str | None = Field(None, max_length=16_000)
    output_modalities: list[Literal["audio", "text"]] | None = Field(None, min_length=1, max_length=1)
    audio: AudioConfig | None = None
    max_output_tokens: OutputTokens | None = None
    tools: list[Tool] | None = Field(None, max_length=128)
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    # Accepted and reported with the value in force (README, "Session fields"): Parley keeps no
    # traces, prompts or reasoning settings, and its LLM service manages the context length.
    tracing: RealtimeTracingConfig = None
    truncation: RealtimeTruncation | None = None
    include: list[Literal["item.input_audio_transcription.logprobs"]] | None = None
    prompt: ResponsePrompt | None = None
    reasoning: RealtimeReasoning | None = None
    parley: ParleySettings | None = None


class _ClientEvent(_Strict):
    event_id: str | None = Field(None, max_length=512)


class SessionUpdate(_ClientEvent):
    type: Literal["session.update"]
    session: SessionConfig


class InputAudioBufferAppend(_ClientEvent):
    type: Literal["input_audio_buffer.append"]
    audio: bytes  # decoded PCM16

    @field_validator("audio", mode="before")
    @classmethod
    def _decode(cls, value: object) -> bytes:
        if not isinstance(value, str):
            raise ValueError("audio must be a base64 string of PCM16 samples")
        if len(value) > (REALTIME_AUDIO_RATE * 2 * MAX_APPEND_SECONDS * 4) // 3 + 4:
            raise ValueError(f"audio is longer than {MAX_APPEND_SECONDS} s; append it in smaller pieces")
        try:
            pcm = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("audio is not valid base64") from None
        if len(pcm) % 2:
            raise ValueError("audio must be whole PCM16 samples (an even number of bytes)")
        return pcm


class InputAudioBufferCommit(_ClientEvent):
    type: Literal["input_audio_buffer.commit"]


class InputAudioBufferClear(_ClientEvent):
    type: Literal["input_audio_buffer.clear"]


class ContentPart(_Strict):
    type: Literal["input_text", "input_image", "input_audio", "text", "output_text", "output_audio"]
    text: str | None = Field(None, max_length=16_000)
    image_url: str | None = Field(None, max_length=3_000_000)  # a data: URL
    audio: str | None = None
    transcript: str | None = Field(None, max_length=16_000)
    detail: Literal["auto", "low", "high"] | None = None


class ConversationItem(_Strict):
    id: str | None = Field(None, max_length=128)
    type: Literal["message"] = "message"
    object: Literal["realtime.item"] | None = None
    role: Literal["user", "assistant", "system"]
    status: Literal["completed", "incomplete", "in_progress"] | None = None
    content: list[ContentPart] = Field(min_length=1, max_length=16)


class FunctionCallItem(_Strict):
    """An assistant's function call, added by the client (a conversation said elsewhere)."""

    id: str | None = Field(None, max_length=128)
    type: Literal["function_call"]
    object: Literal["realtime.item"] | None = None
    status: Literal["completed", "incomplete", "in_progress"] | None = None
    call_id: str = Field(min_length=1, max_length=128)
    name: str = Field(min_length=1, max_length=64)
    arguments: str = Field(max_length=16_000)


class FunctionCallOutputItem(_Strict):
    """A function's result: what the client's code returned for a call."""

    id: str | None = Field(None, max_length=128)
    type: Literal["function_call_output"]
    object: Literal["realtime.item"] | None = None
    status: Literal["completed", "incomplete", "in_progress"] | None = None
    call_id: str = Field(min_length=1, max_length=128)
    output: str = Field(max_length=16_000)


def _item_type(value: object) -> str:
    kind = value.get("type", "message") if isinstance(value, dict) else getattr(value, "type", "message")
    return kind if kind in ("function_call", "function_call_output") else "message"


AnyItem = Annotated[
    Annotated[ConversationItem, Tag("message")]
    | Annotated[FunctionCallItem, Tag("function_call")]
    | Annotated[FunctionCallOutputItem, Tag("function_call_output")],
    Discriminator(_item_type),
]


class ConversationItemCreate(_ClientEvent):
    type: Literal["conversation.item.create"]
    previous_item_id: str | None = None
    item: AnyItem


class ConversationItemTruncate(_ClientEvent):
    type: Literal["conversation.item.truncate"]
    item_id: str
    content_index: int = Field(ge=0)
    audio_end_ms: int = Field(ge=0)


class ConversationItemDelete(_ClientEvent):
    type: Literal["conversation.item.delete"]
    item_id: str


class ConversationItemRetrieve(_ClientEvent):
    type: Literal["conversation.item.retrieve"]
    item_id: str


class ResponseAudioOutput(_Strict):
    format: AudioFormat | None = None
    voice: str | VoiceId | None = Field(None, max_length=128)


class ResponseAudio(_Strict):
    output: ResponseAudioOutput | None = None


class ResponseParams(_Strict):
    instructions: str | None = Field(None, max_length=16_000)
    output_modalities: list[Literal["audio", "text"]] | None = Field(None, min_length=1, max_length=1)
    max_output_tokens: OutputTokens | None = None
    conversation: str | None = Field(None, max_length=128)  # "auto", "none" or the conversation's id
    input: list[ConversationItem] | None = Field(None, max_length=64)
    metadata: dict[str, str] | None = Field(None, max_length=16)
    audio: ResponseAudio | None = None
    tools: list[Tool] | None = Field(None, max_length=128)
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    prompt: ResponsePrompt | None = None
    reasoning: RealtimeReasoning | None = None


class ResponseCreate(_ClientEvent):
    type: Literal["response.create"]
    response: ResponseParams | None = None


class ResponseCancel(_ClientEvent):
    type: Literal["response.cancel"]
    response_id: str | None = None


class OutputAudioBufferClear(_ClientEvent):
    type: Literal["output_audio_buffer.clear"]


ClientEvent = Annotated[
    SessionUpdate
    | InputAudioBufferAppend
    | InputAudioBufferCommit
    | InputAudioBufferClear
    | ConversationItemCreate
    | ConversationItemTruncate
    | ConversationItemDelete
    | ConversationItemRetrieve
    | ResponseCreate
    | ResponseCancel
    | OutputAudioBufferClear,
    Field(discriminator="type"),
]
_CLIENT_EVENT: TypeAdapter[ClientEvent] = TypeAdapter(ClientEvent)
CLIENT_EVENT_TYPES = tuple(
    model.model_fields["type"].annotation.__args__[0]
    for model in ClientEvent.__origin__.__args__  # type: ignore[attr-defined]
)


class ProtocolError(Exception):
    """A client event Parley cannot accept; becomes an ``error`` event."""

    def __init__(self, code: str, message: str, event_id: str | None = None, param: str | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.event_id, self.param = code, message, event_id, param

    def to_event(self) -> BaseModel:
        """The server ``error`` event (OpenAI's shape)."""
        return events.error(
            self.code, self.message, kind="invalid_request_error", param=self.param, event_id=self.event_id
        )


def parse_client_event(raw: str | bytes, max_bytes: int = 4 * 1024 * 1024) -> ClientEvent:
    """One client event from its JSON text; ProtocolError with a clear message otherwise."""
    if len(raw) > max_bytes:
        raise ProtocolError("event_too_large", f"an event may be at most {max_bytes} bytes, got {len(raw)}")
    try:
        return _CLIENT_EVENT.validate_json(raw)
    except ValidationError as exc:
        raise _explain(exc, raw) from None


def _explain(exc: ValidationError, raw: str | bytes) -> ProtocolError:
    event_id = None
    error = exc.errors()[0]
    if error["type"] == "json_invalid":
        return ProtocolError("invalid_json", f"the event is not valid JSON: {error['msg']}")
    try:
        document = json.loads(raw)
        event_id = document.get("event_id") if isinstance(document, dict) else None
        event_type = document.get("type") if isinstance(document, dict) else None
    except ValueError:
        event_type = None
    if error["type"] in ("union_tag_invalid", "union_tag_not_found"):
        known = ", ".join(CLIENT_EVENT_TYPES)
        return ProtocolError(
            "unknown_event_type", f"unknown event type {event_type!r}; Parley accepts {known}", event_id, "type"
        )
    # [0] is the event type tag; a union's member tags ("constrained-int", "literal['inf']") are not fields.
    location = ".".join(str(p) for p in error["loc"][1:] if isinstance(p, int) or str(p).isidentifier())
    if error["type"] == "extra_forbidden":
        return ProtocolError("unknown_parameter", f"unknown field {location!r} in {event_type}", event_id, location)
    message = error["msg"].removeprefix("Value error, ")
    return ProtocolError("invalid_value", f"{event_type}: {location}: {message}", event_id, location)
