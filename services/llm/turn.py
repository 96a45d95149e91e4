"""One turn's input: validated audio (resampled to 16 kHz for recognition), images and text."""

from __future__ import annotations

import io
import json
import re
import warnings

import numpy as np
import soxr
from parley.v1 import audio_pb2, conversation_pb2
from PIL import Image

from services.common.audio import AudioFormatError, pcm16_to_float32
from services.common.server import InvalidRequest
from services.llm import metrics
from services.llm.asr import RATE, TurnTranscriber
from services.llm.backends import GenerationParams
from services.llm.backends.tools import ToolSpec, ToolUse
from services.llm.sessions import Call, Message, Role
from services.llm.settings import LlmSettings

SUPPORTED_RATES = (8000, 16000, 24000, 48000)
SESSION_ID = re.compile(r"[A-Za-z0-9._:@-]{1,128}")


def check_session_id(session_id: str) -> None:
    if not SESSION_ID.fullmatch(session_id):
        raise InvalidRequest("session_id must be 1-128 characters of letters, digits and . _ : @ -")


def validate_header(header: conversation_pb2.TurnHeader, settings: LlmSettings) -> GenerationParams:
    """Check a turn header; return the generation parameters it asks for."""
    check_session_id(header.session_id)
    if len(header.turn_id) > 128:
        raise InvalidRequest("turn_id must be at most 128 characters")
    for name in ("system_prompt", "instructions"):
        if header.HasField(name) and len(getattr(header, name)) > settings.max_turn_text_chars:
            raise InvalidRequest(f"{name} is longer than {settings.max_turn_text_chars} characters")
    if len(header.transcription_prompt) > 2000:
        raise InvalidRequest("transcription_prompt is longer than 2000 characters")
    if len(header.transcription_language) > 16:
        raise InvalidRequest("transcription_language is an ISO-639-1 code, like 'en'")
    if len(header.user_item_ids) > 64 or any(len(i) > 128 for i in [*header.user_item_ids, header.reply_item_id]):
        raise InvalidRequest("a turn names at most 64 user items, and item ids have at most 128 characters")
    generation = header.generation
    max_tokens = settings.default_max_output_tokens
    if generation.HasField("max_output_tokens"):
        max_tokens = generation.max_output_tokens
        if not 1 <= max_tokens <= settings.max_output_tokens:
            raise InvalidRequest(f"max_output_tokens must be between 1 and {settings.max_output_tokens}")
    temperature = generation.temperature if generation.HasField("temperature") else 0.0
    if not 0 <= temperature <= 2:
        raise InvalidRequest("temperature must be between 0 and 2")
    top_p = generation.top_p if generation.HasField("top_p") else 1.0
    if not 0 < top_p <= 1:
        raise InvalidRequest("top_p must be in (0, 1]")
    if len(generation.stop) > 8 or any(len(s) > 64 for s in generation.stop):
        raise InvalidRequest("stop takes at most 8 strings of at most 64 characters")
    return GenerationParams(
        max_output_tokens=max_tokens,
        temperature=temperature,
        top_p=top_p,
        seed=generation.seed if generation.HasField("seed") else None,
        stop=tuple(generation.stop),
    )


class TurnInput:
    """Collects a turn's input as it streams in, enforcing the per-turn limits."""

    def __init__(self, settings: LlmSettings, mode: int, transcriber: TurnTranscriber | None) -> None:
        self._settings = settings
        self._mode = mode
        self.transcriber = transcriber
        self.texts: list[str] = []
        self.cuts: list[tuple[str, str]] = []  # (turn_id, heard_text): earlier replies to cut first
        self.context: list[Message] = []  # messages before the input (an out-of-band response's)
        self._text_chars = 0
        self.images: list[bytes] = []
        self.units = 0
        self.audio_rate = 0
        self.audio_samples = 0  # at the client's rate
        self._resampler: soxr.ResampleStream | None = None
        self.audio_16k: list[np.ndarray] = []  # kept for engines that hear audio themselves

    @property
    def has_input(self) -> bool:
        return bool(self.texts or self.images or self.audio_samples)

    @property
    def audio_seconds(self) -> float:
        return self.audio_samples / self.audio_rate if self.audio_rate else 0.0

    def add_audio(self, chunk: audio_pb2.AudioChunk) -> None:
        rate = chunk.sample_rate or RATE
        if rate not in SUPPORTED_RATES:
            raise InvalidRequest(f"audio sample_rate {rate} is not supported; use one of {SUPPORTED_RATES}")
        if self.audio_rate and rate != self.audio_rate:
            raise InvalidRequest(f"audio sample_rate changed from {self.audio_rate} to {rate} within a turn")
        if not chunk.pcm16:
            raise InvalidRequest("empty audio chunk")
        if chunk.offset_samples and chunk.offset_samples != self.audio_samples:
            raise InvalidRequest(
                f"audio chunk offset_samples {chunk.offset_samples} does not follow the previous chunk "
                f"(expected {self.audio_samples})"
            )
        limit = self._settings.max_turn_audio_seconds
        if (self.audio_samples + len(chunk.pcm16) // 2) / rate > limit:
            raise InvalidRequest(f"the turn's audio is longer than the limit of {limit:g} s; end the turn sooner")
        try:
            samples = pcm16_to_float32(chunk.pcm16)
        except AudioFormatError as exc:
            raise InvalidRequest(str(exc)) from None
        if not self.audio_rate:
            self.audio_rate = rate
            if rate != RATE:
                self._resampler = soxr.ResampleStream(rate, RATE, 1, dtype="float32")
        self.audio_samples += len(samples)
        self._push_16k(self._resampler.resample_chunk(samples) if self._resampler else samples)

    def finish_audio(self) -> None:
        if self._resampler is not None:
            self._push_16k(self._resampler.resample_chunk(np.empty(0, dtype=np.float32), last=True))
            self._resampler = None

    def _push_16k(self, samples: np.ndarray) -> None:
        self.audio_16k.append(samples)
        if self.transcriber is not None:
            self.transcriber.feed(samples)

    def add_image(self, frame: audio_pb2.ImageFrame) -> None:
        if len(self.images) >= self._settings.max_turn_images:
            raise InvalidRequest(f"a turn carries at most {self._settings.max_turn_images} images")
        if len(frame.jpeg) > self._settings.max_image_bytes:
            raise InvalidRequest(f"image of {len(frame.jpeg)} bytes is over the {self._settings.max_image_bytes} limit")
        check_jpeg(frame.jpeg, self._settings.max_image_pixels)
        self.images.append(frame.jpeg)
        metrics.IMAGES.inc()

    def add_text(self, text: str) -> None:
        self._text_chars += len(text)
        if self._text_chars > self._settings.max_turn_text_chars:
            raise InvalidRequest(f"the turn's text is longer than {self._settings.max_turn_text_chars} characters")
        if text.strip():
            self.texts.append(text)

    def add_context(self, message: conversation_pb2.HistoryMessage) -> None:
        if len(self.context) >= 64:
            raise InvalidRequest("a turn carries at most 64 context messages")
        self._text_chars += len(message.text)
        if self._text_chars > self._settings.max_turn_text_chars:
            raise InvalidRequest(f"the turn's text is longer than {self._settings.max_turn_text_chars} characters")
        self.context.append(history_message(message, self._settings))

    def end_unit(self) -> None:
        if self._mode != conversation_pb2.CONVERSATION_MODE_OMNI:
            raise InvalidRequest("EndOfUnit is for omni mode; end the turn with EndOfInput")
        self.units += 1


ROLES: dict[int, Role] = {
    conversation_pb2.MESSAGE_ROLE_SYSTEM: "system",
    conversation_pb2.MESSAGE_ROLE_USER: "user",
    conversation_pb2.MESSAGE_ROLE_ASSISTANT: "assistant",
    conversation_pb2.MESSAGE_ROLE_TOOL: "tool",
}
TOOL_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
MAX_TOOLS = 128
MAX_SCHEMA_CHARS = 64 * 1024


def history_message(message: conversation_pb2.HistoryMessage, settings: LlmSettings, turn_id: str = "") -> Message:
    """A message as the history keeps it; InvalidRequest for a bad one."""
    if message.role not in ROLES:
        raise InvalidRequest("a message's role must be system, user, assistant or tool")
    if len(message.text) > settings.max_turn_text_chars:
        raise InvalidRequest(f"a message is longer than {settings.max_turn_text_chars} characters")
    if len(message.item_id) > 128 or len(message.call_id) > 128:
        raise InvalidRequest("item and call ids have at most 128 characters")
    role = ROLES[message.role]
    calls: tuple[Call, ...] = ()
    if message.HasField("function_call"):
        call = message.function_call
        if role != "assistant":
            raise InvalidRequest("only an assistant message calls a function")
        if not TOOL_NAME.fullmatch(call.name) or len(call.call_id) > 128:
            raise InvalidRequest("a function call needs a name of 1-64 letters, digits, _ or -")
        if len(call.arguments) > settings.max_turn_text_chars:
            raise InvalidRequest("a function call's arguments are longer than the text limit")
        calls = (Call(call.call_id, call.name, call.arguments),)
    if role == "tool" and not message.call_id:
        raise InvalidRequest("a tool message names the call it answers (call_id)")
    ids = (message.item_id,) if message.item_id else ()
    return Message(role, message.text, turn_id, ids, calls, message.call_id if role == "tool" else "")


def tool_use(header: conversation_pb2.TurnHeader) -> ToolUse | None:
    """The turn's tools and the choice among them; None when it has none (or may call none)."""
    if len(header.tools) > MAX_TOOLS:
        raise InvalidRequest(f"a turn offers at most {MAX_TOOLS} tools")
    specs = []
    for tool in header.tools:
        if not TOOL_NAME.fullmatch(tool.name):
            raise InvalidRequest(f"tool name {tool.name[:80]!r} must be 1-64 letters, digits, _ or -")
        if len(tool.parameters_json) > MAX_SCHEMA_CHARS or len(tool.description) > 4000:
            raise InvalidRequest(f"tool {tool.name}: its description or parameters schema is too long")
        parameters = None
        if tool.parameters_json:
            try:
                parameters = json.loads(tool.parameters_json)
            except ValueError:
                raise InvalidRequest(f"tool {tool.name}: parameters_json is not JSON") from None
            if not isinstance(parameters, dict):
                raise InvalidRequest(f"tool {tool.name}: parameters_json must be a JSON Schema object")
        specs.append(ToolSpec(tool.name, tool.description, parameters))
    if len({t.name for t in specs}) < len(specs):
        raise InvalidRequest("tool names must be unique within a turn")
    choice = header.tool_choice
    if choice.function:
        if choice.function not in {t.name for t in specs}:
            raise InvalidRequest(f"tool_choice names {choice.function[:80]!r}, which is not among the turn's tools")
        return ToolUse(tuple(specs), choice.function)
    if not specs or choice.mode == conversation_pb2.TOOL_CHOICE_MODE_NONE:
        if choice.mode == conversation_pb2.TOOL_CHOICE_MODE_REQUIRED:
            raise InvalidRequest("tool_choice REQUIRED needs tools")
        return None
    return ToolUse(tuple(specs), "required" if choice.mode == conversation_pb2.TOOL_CHOICE_MODE_REQUIRED else "auto")


def check_jpeg(data: bytes, max_pixels: int) -> None:
    """Raise InvalidRequest unless ``data`` is a whole, decodable JPEG of at most ``max_pixels``."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                if image.format != "JPEG":
                    raise InvalidRequest(f"image must be a JPEG, got {image.format or 'an unknown format'}")
                if image.width * image.height > max_pixels:
                    raise InvalidRequest(f"image of {image.width}x{image.height} is over the {max_pixels}-pixel limit")
                image.load()  # decodes everything: a truncated or corrupt file fails here
    except InvalidRequest:
        raise
    except Exception as exc:
        raise InvalidRequest(f"image is not a valid JPEG ({exc})") from None
