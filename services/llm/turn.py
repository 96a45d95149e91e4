"""One turn's input: validated audio (resampled to 16 kHz for recognition), images and text."""

from __future__ import annotations

import io
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
from services.llm.settings import LlmSettings

SUPPORTED_RATES = (8000, 16000, 24000, 48000)
SESSION_ID = re.compile(r"[A-Za-z0-9._:@-]{1,128}")


def validate_header(header: conversation_pb2.TurnHeader, settings: LlmSettings) -> GenerationParams:
    """Check a turn header; return the generation parameters it asks for."""
    if not SESSION_ID.fullmatch(header.session_id):
        raise InvalidRequest("session_id must be 1-128 characters of letters, digits and . _ : @ -")
    if len(header.turn_id) > 128:
        raise InvalidRequest("turn_id must be at most 128 characters")
    if header.HasField("system_prompt") and len(header.system_prompt) > settings.max_turn_text_chars:
        raise InvalidRequest(f"system_prompt is longer than {settings.max_turn_text_chars} characters")
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

    def end_unit(self) -> None:
        if self._mode != conversation_pb2.CONVERSATION_MODE_OMNI:
            raise InvalidRequest("EndOfUnit is for omni mode; end the turn with EndOfInput")
        self.units += 1


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
