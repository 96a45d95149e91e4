"""Turn input validation: header, audio, images, text, limits."""

import io

import numpy as np
import pytest
from parley.v1 import audio_pb2, conversation_pb2
from PIL import Image

from services.common.audio import float32_to_pcm16
from services.llm.settings import LlmSettings
from services.llm.turn import InvalidRequest, TurnInput, check_jpeg, validate_header

SETTINGS = LlmSettings(max_turn_audio_seconds=2, max_turn_text_chars=20, max_turn_images=1)


def jpeg(width: int = 32, height: int = 24) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(buffer, format="JPEG")
    return buffer.getvalue()


def header(**fields: object) -> conversation_pb2.TurnHeader:
    return conversation_pb2.TurnHeader(session_id="s-1", **fields)  # type: ignore[arg-type]


def test_header_defaults_and_generation_parameters() -> None:
    params = validate_header(header(), SETTINGS)
    assert (params.max_output_tokens, params.temperature, params.top_p, params.seed) == (256, 0.0, 1.0, None)
    params = validate_header(
        header(generation=conversation_pb2.GenerationParams(max_output_tokens=5, temperature=0.7, seed=3)), SETTINGS
    )
    assert (params.max_output_tokens, params.temperature, params.seed) == (5, pytest.approx(0.7), 3)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"session_id": ""}, "session_id"),
        ({"session_id": "../etc/passwd"}, "session_id"),
        ({"generation": conversation_pb2.GenerationParams(max_output_tokens=100_000)}, "max_output_tokens"),
        ({"generation": conversation_pb2.GenerationParams(temperature=3)}, "temperature"),
        ({"generation": conversation_pb2.GenerationParams(top_p=0)}, "top_p"),
    ],
)
def test_bad_headers_are_named(fields: dict[str, object], message: str) -> None:
    request = conversation_pb2.TurnHeader(**{"session_id": "s", **fields})  # type: ignore[arg-type]
    with pytest.raises(InvalidRequest, match=message):
        validate_header(request, SETTINGS)


def audio(seconds: float, rate: int = 16000, **fields: int) -> audio_pb2.AudioChunk:
    samples = np.zeros(int(seconds * rate), np.float32)
    return audio_pb2.AudioChunk(pcm16=float32_to_pcm16(samples), sample_rate=rate, **fields)


def test_audio_at_other_rates_is_resampled_to_16k() -> None:
    turn = TurnInput(SETTINGS, 0, transcriber=None)
    for _ in range(10):
        turn.add_audio(audio(0.1, rate=48000))
    turn.finish_audio()
    assert turn.audio_seconds == pytest.approx(1.0)
    assert sum(len(a) for a in turn.audio_16k) == pytest.approx(16000, abs=2)


@pytest.mark.parametrize(
    ("chunks", "message"),
    [
        ([audio(0.1, rate=44100)], "not supported"),
        ([audio(0.1, rate=16000), audio(0.1, rate=8000)], "changed"),
        ([audio(3)], "longer than the limit of 2 s"),
        ([audio(1), audio(1.5)], "longer than the limit"),
        ([audio_pb2.AudioChunk(pcm16=b"\0\0\0")], "even number of bytes"),
        ([audio_pb2.AudioChunk(pcm16=b"")], "empty audio chunk"),
        ([audio(0.1, offset_samples=99)], "does not follow"),
    ],
)
def test_bad_audio_is_refused(chunks: list[audio_pb2.AudioChunk], message: str) -> None:
    turn = TurnInput(SETTINGS, 0, transcriber=None)
    with pytest.raises(InvalidRequest, match=message):
        for chunk in chunks:
            turn.add_audio(chunk)


def test_images_are_checked_and_limited() -> None:
    turn = TurnInput(SETTINGS, 0, transcriber=None)
    turn.add_image(audio_pb2.ImageFrame(jpeg=jpeg()))
    with pytest.raises(InvalidRequest, match="at most 1 images"):
        turn.add_image(audio_pb2.ImageFrame(jpeg=jpeg()))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (jpeg()[:200], "not a valid JPEG"),
        (b"not an image at all", "not a valid JPEG"),
        (jpeg(3000, 3000), "pixel limit"),
    ],
)
def test_corrupt_or_oversized_images_are_refused(data: bytes, message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        check_jpeg(data, max_pixels=2000 * 2000)


def test_png_is_not_a_jpeg() -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buffer, format="PNG")
    with pytest.raises(InvalidRequest, match="must be a JPEG, got PNG"):
        check_jpeg(buffer.getvalue(), max_pixels=100)


def test_text_limit_and_omni_units() -> None:
    turn = TurnInput(SETTINGS, conversation_pb2.CONVERSATION_MODE_CHAT, transcriber=None)
    turn.add_text("x" * 20)
    with pytest.raises(InvalidRequest, match="longer than 20 characters"):
        turn.add_text("y")
    with pytest.raises(InvalidRequest, match="omni mode"):
        turn.end_unit()
    omni = TurnInput(SETTINGS, conversation_pb2.CONVERSATION_MODE_OMNI, transcriber=None)
    omni.end_unit()
    assert omni.units == 1
