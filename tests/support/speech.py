"""Test audio made at test time: espeak-ng speech, known silences, seeded noise."""

from __future__ import annotations

import functools
import io
import shutil
import subprocess
import wave
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import soxr


def require_espeak() -> str:
    path = shutil.which("espeak-ng")
    if path is None:
        raise RuntimeError("espeak-ng is missing: `make test` installs it (apt-get install espeak-ng)")
    return path


def speak(text: str, sample_rate: int = 16000, voice: str = "en-us", words_per_minute: int = 160) -> np.ndarray:
    """Synthesise ``text`` with espeak-ng and resample it to ``sample_rate`` (float32 mono)."""
    wav_bytes = subprocess.run(
        [require_espeak(), "-v", voice, "-s", str(words_per_minute), "--stdout", text],
        check=True,
        capture_output=True,
    ).stdout
    with wave.open(io.BytesIO(wav_bytes)) as wav:
        rate = wav.getframerate()
        # espeak-ng writes a streaming header with a bogus length; read what is there.
        frames = wav.readframes(wav.getnframes() or 1 << 30)
    samples = np.frombuffer(frames, dtype="<i2").astype(np.float32) / 32768.0
    return resample(samples, rate, sample_rate)


def resample(samples: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    return soxr.resample(samples, from_rate, to_rate).astype(np.float32)


def voiced_bounds(
    samples: np.ndarray, sample_rate: int, frame_ms: int = 10, floor_db: float = -40.0
) -> tuple[int, int]:
    """First and last sample of the frames whose level is within ``floor_db`` of the loudest."""
    frame = sample_rate * frame_ms // 1000
    n_frames = len(samples) // frame
    rms = np.sqrt(np.mean(samples[: n_frames * frame].reshape(n_frames, frame) ** 2, axis=1) + 1e-12)
    level_db = 20 * np.log10(rms / rms.max())
    voiced = np.flatnonzero(level_db > floor_db)
    return int(voiced[0] * frame), int((voiced[-1] + 1) * frame)


def trim(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """The voiced part of ``samples``, without espeak's leading and trailing silence."""
    start, end = voiced_bounds(samples, sample_rate)
    return samples[start:end]


def white_noise(n_samples: int, rms: float, seed: int) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(n_samples) * rms).astype(np.float32)


def pink_noise(n_samples: int, rms: float, seed: int) -> np.ndarray:
    """1/f noise made by shaping white noise in the frequency domain."""
    spectrum = np.fft.rfft(np.random.default_rng(seed).standard_normal(n_samples))
    spectrum /= np.sqrt(np.maximum(np.arange(len(spectrum)), 1))
    noise = np.fft.irfft(spectrum, n_samples)
    return (noise / np.sqrt(np.mean(noise**2)) * rms).astype(np.float32)


def rms_of(samples: np.ndarray) -> float:
    return float(np.sqrt(np.mean(samples.astype(np.float64) ** 2)))


@dataclass(frozen=True)
class Utterance:
    """Where a piece of speech sits in a composed recording, in samples."""

    start: int
    end: int


def compose(parts: list[np.ndarray | float], sample_rate: int) -> tuple[np.ndarray, list[Utterance]]:
    """Concatenate speech arrays and silences (floats, in seconds); return audio and speech spans."""
    pieces, spans, position = [], [], 0
    for part in parts:
        if isinstance(part, float | int):
            piece = np.zeros(int(part * sample_rate), dtype=np.float32)
        else:
            piece = part
            spans.append(Utterance(position, position + len(piece)))
        pieces.append(piece)
        position += len(piece)
    return np.concatenate(pieces), spans


# --- voices --------------------------------------------------------------------------------

VOICE_RATE = 16000  # what the voices below return


def espeak_voice(text: str) -> np.ndarray:
    return trim(speak(text, VOICE_RATE), VOICE_RATE)


@functools.cache
def _piper() -> tuple[object, object]:
    import piper
    from piper.config import SynthesisConfig

    from services.tts.backends.piper import bundled_voice_path

    # No sampling noise: Piper otherwise draws random noise inside the model, and the same
    # text would come out a little different (and be judged differently) each run.
    return piper.PiperVoice.load(bundled_voice_path()), SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)


def piper_voice(text: str) -> np.ndarray:
    voice, config = _piper()
    chunks = [chunk.audio_float_array for chunk in voice.synthesize(text, config)]  # type: ignore[attr-defined]
    rate = voice.config.sample_rate  # type: ignore[attr-defined]
    return trim(resample(np.concatenate(chunks).astype(np.float32), rate, VOICE_RATE), VOICE_RATE)


def piper_voice_at(text: str, sample_rate: int) -> np.ndarray:
    """The bundled Piper voice at ``sample_rate``: for tests that check the recognised words of a
    question, in the voice the recogniser is measured on (espeak's robotic "capital of France"
    is one of the clips its two paths hear differently)."""
    return resample(piper_voice(text), VOICE_RATE, sample_rate)


VOICES: dict[str, Callable[[str], np.ndarray]] = {"espeak": espeak_voice, "piper": piper_voice}
