"""Audio helpers shared by the services: PCM16 decoding and validation."""

from __future__ import annotations

import numpy as np

PCM16_SCALE = 32768.0


class AudioFormatError(ValueError):
    """Audio bytes that are not valid PCM16."""


def pcm16_to_float32(pcm16: bytes) -> np.ndarray:
    """Decode little-endian signed 16-bit mono samples to float32 in [-1, 1)."""
    if len(pcm16) % 2:
        raise AudioFormatError(f"PCM16 audio must have an even number of bytes, got {len(pcm16)}")
    return np.frombuffer(pcm16, dtype="<i2").astype(np.float32) / PCM16_SCALE


def float32_to_pcm16(samples: np.ndarray) -> bytes:
    """Encode float samples in [-1, 1] as little-endian PCM16, clipping what is outside."""
    return (np.clip(samples, -1.0, 32767 / PCM16_SCALE) * PCM16_SCALE).astype("<i2").tobytes()
