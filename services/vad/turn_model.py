"""Smart Turn v3.2: the probability that a speaker has finished their turn, from their audio.

The model (a Whisper-tiny encoder with a classifier head, by Daily, BSD-2-Clause) reads the last
8 s of 16 kHz audio as 80-bin Whisper log-mel features, 800 frames. Its preprocessing must match
training exactly: the audio sits at the *end* of the window, zeros pad the start, and the whole
padded window is normalised to zero mean and unit variance before the spectrogram (as
``transformers.WhisperFeatureExtractor(chunk_length=8)`` does with ``do_normalize=True``).
Padding the other side turns clearly cut-off speech into "finished"; tests hold both down.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import soxr

from services.common.bundled import BundledFile
from services.common.onnx import cpu_session

# The ONNX file inside the pinned `pipecat-ai` wheel, installed without its dependencies and
# never imported: only this file is read.
BUNDLED_TURN_MODEL = BundledFile(
    "pipecat-ai",
    "pipecat/audio/turn/smart_turn/data/smart-turn-v3.2-cpu.onnx",
    "2bb026316b14a660486a75b1733cd3fbab8c2fd0314dc9af7be49f8cca967e4f",
)

SAMPLE_RATE = 16000
WINDOW_SECONDS = 8
WINDOW_SAMPLES = SAMPLE_RATE * WINDOW_SECONDS
N_FFT = 400
HOP = 160
N_MELS = 80
_NORMALISE_EPS = 1e-7
_MEL_FLOOR = 1e-10


def _hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    """Slaney's mel scale: linear below 1 kHz, logarithmic above (as librosa and Whisper)."""
    hz = np.asarray(hz, dtype=np.float64)
    log_part = 15.0 + np.log(np.maximum(hz, 1e-10) / 1000.0) * 27.0 / np.log(6.4)
    return np.where(hz < 1000.0, 3.0 * hz / 200.0, log_part)


def _mel_to_hz(mel: np.ndarray | float) -> np.ndarray:
    mel = np.asarray(mel, dtype=np.float64)
    return np.where(mel < 15.0, 200.0 * mel / 3.0, 1000.0 * np.exp((mel - 15.0) * np.log(6.4) / 27.0))


def _mel_filters() -> np.ndarray:
    """Triangular filters over the FFT bins, Slaney area-normalised: (n_fft // 2 + 1, N_MELS)."""
    edges = _mel_to_hz(np.linspace(_hz_to_mel(0.0), _hz_to_mel(SAMPLE_RATE / 2), N_MELS + 2))
    bins = np.linspace(0, SAMPLE_RATE // 2, N_FFT // 2 + 1)
    slopes = edges[None, :] - bins[:, None]
    widths = np.diff(edges)
    rising = -slopes[:, :-2] / widths[:-1]
    falling = slopes[:, 2:] / widths[1:]
    filters = np.maximum(0.0, np.minimum(rising, falling))
    return filters * (2.0 / (edges[2:] - edges[:-2]))[None, :]


_FILTERS = _mel_filters()
_HANN = np.hanning(N_FFT + 1)[:-1]  # periodic, as torch.hann_window


def scoring_window(audio: np.ndarray) -> np.ndarray:
    """The model's 8 s input: the last 8 s of ``audio``, zero-padded at the start."""
    audio = np.asarray(audio, dtype=np.float32)[-WINDOW_SAMPLES:]
    return np.pad(audio, (WINDOW_SAMPLES - len(audio), 0))


def log_mel_features(window: np.ndarray) -> np.ndarray:
    """Whisper's log-mel features of one 8 s window: (80, 800) float32, roughly in [-1, 1]."""
    if window.shape != (WINDOW_SAMPLES,):
        raise ValueError(f"expected {WINDOW_SAMPLES} samples, got shape {window.shape}")
    x = window.astype(np.float32)
    x = (x - x.mean()) / np.sqrt(x.var() + _NORMALISE_EPS)
    padded = np.pad(x.astype(np.float64), N_FFT // 2, mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP]
    power = np.abs(np.fft.rfft(frames * _HANN, axis=-1)) ** 2  # (801, 201)
    log_spec = np.log10(np.maximum(_MEL_FLOOR, power @ _FILTERS)).T[:, :-1]  # Whisper drops the last frame
    log_spec = np.maximum(log_spec, log_spec.max() - 8.0)
    return ((log_spec + 4.0) / 4.0).astype(np.float32)


class SmartTurnModel:
    """Scores audio with the Smart Turn ONNX model; thread-safe (onnxruntime sessions are)."""

    def __init__(self, path: Path | None = None, threads: int = 1) -> None:
        if path is None:
            path = BUNDLED_TURN_MODEL.verified()
        self.path = path
        self._session = cpu_session(path, threads)
        self._input = self._session.get_inputs()[0].name

    def score(self, audio: np.ndarray) -> float:
        """Probability that the speech in ``audio`` (16 kHz float32, ending now) is a finished turn."""
        features = log_mel_features(scoring_window(audio))
        (output,) = self._session.run(None, {self._input: features[None]})
        return float(np.clip(output[0, 0], 0.0, 1.0))


class TurnScorer:
    """Runs scorings on a few threads off the event loop (a scoring takes ~40 ms of CPU)."""

    def __init__(self, model: SmartTurnModel, workers: int) -> None:
        self._model = model
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix="turn-model")

    async def score(self, audio: np.ndarray, sample_rate: int) -> tuple[float, float]:
        """(probability, seconds taken) for ``audio`` at ``sample_rate``."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._timed, audio, sample_rate)

    def _timed(self, audio: np.ndarray, sample_rate: int) -> tuple[float, float]:
        started = time.perf_counter()
        if sample_rate != SAMPLE_RATE:
            audio = soxr.resample(audio, sample_rate, SAMPLE_RATE).astype(np.float32)
        probability = self._model.score(audio)
        return probability, time.perf_counter() - started

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
