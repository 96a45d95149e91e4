"""Settings of the VAD service."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.common.settings import ServiceSettings


class VadSettings(ServiceSettings):
    """Silero voice activity detection over gRPC (parley.v1.VoiceActivityService).

    Every option can also be set in the environment as PARLEY_VAD_<OPTION>, e.g.
    PARLEY_VAD_PORT=50051; flags win over the environment.
    """

    model_config = SettingsConfigDict(env_prefix="PARLEY_VAD_", cli_prog_name="python -m services.vad")

    port: int = Field(50051, ge=0, le=65535, description="gRPC port (0 picks a free one).")
    metrics_port: int = Field(
        9051, ge=-1, le=65535, description="Port of the Prometheus /metrics HTTP server (0: any free, -1: off)."
    )
    model_path: Path | None = Field(
        None,
        description="A Silero VAD ONNX file to load instead of the one bundled in the silero-vad package "
        "(the bundled file is checked against its pinned sha256).",
    )
    max_streams: int = Field(1024, ge=1, description="Detect streams served at once; more get RESOURCE_EXHAUSTED.")
    max_chunk_ms: int = Field(
        5000, ge=32, le=60_000, description="Longest audio chunk accepted, in milliseconds of audio."
    )
    max_batch: int = Field(256, ge=1, le=4096, description="Most streams advanced by one batched model step.")
    inference_threads: int = Field(1, ge=1, le=64, description="onnxruntime threads for one model step.")
    threshold: float = Field(
        0.5, gt=0, lt=1, description="Default speech probability threshold for streams that do not set one."
    )
    min_silence_ms: int = Field(100, ge=0, le=10_000, description="Default silence that ends speech.")
    speech_pad_ms: int = Field(30, ge=0, le=2000, description="Default padding around each speech segment.")
    min_speech_ms: int = Field(0, ge=0, le=10_000, description="Default shortest speech that counts.")
    turn_detection: bool = Field(
        True,
        description="Load the turn model (Smart Turn v3.2, from the pinned pipecat-ai package) so streams can "
        "ask for semantic end of turn (DetectConfig.turn_detection).",
    )
    turn_model_path: Path | None = Field(
        None,
        description="A Smart Turn v3 ONNX file to load instead of the bundled one "
        "(the bundled file is checked against its pinned sha256).",
    )
    turn_threads: int = Field(
        1, ge=1, le=64, description="Threads scoring turns at once (one scoring: ~40 ms of one core)."
    )
    turn_completion_threshold: float = Field(
        0.5, gt=0, lt=1, description="Default probability at or above which the turn model ends a turn."
    )
    turn_max_wait_ms: int = Field(
        2000, ge=0, le=10_000, description="Default longest silence a turn judged unfinished waits before it ends."
    )
