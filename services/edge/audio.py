"""Audio in and out of a session: the input history, resampling, and the assistant's output.

Inside a session all user audio is PCM16 mono at 16 kHz (what VAD and ASR take). WebRTC brings
48 kHz Opus frames and WebSocket clients bring 24 kHz PCM16; both are resampled on arrival.
The assistant's audio goes out at 48 kHz on the outgoing RTP track (WebRTC) or at 24 kHz in
``response.output_audio.delta`` events (WebSocket).
"""

from __future__ import annotations

import asyncio
import fractions
from collections.abc import Callable
from typing import Protocol

import av
import numpy as np
import soxr
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from services.edge import clock

INPUT_RATE = 16000
WEBRTC_RATE = 48000
FRAME_MS = 20


class InputAudio:
    """The session's recent input audio (16 kHz PCM16), addressed by absolute sample offsets.

    A bytearray grows at its end in amortised constant time; old audio is cut from the front at
    most once a second, so a 50-frames-a-second microphone costs no copying of the history.
    """

    def __init__(self, keep_seconds: float) -> None:
        self._keep = int(keep_seconds * INPUT_RATE)
        self._pcm = bytearray()
        self._first = 0  # absolute offset of the first sample held
        self.total = 0  # samples received since the session began

    def append(self, pcm16: bytes) -> None:
        self._pcm += pcm16
        self.total += len(pcm16) // 2
        excess = len(self._pcm) // 2 - self._keep
        if excess > INPUT_RATE:
            del self._pcm[: excess * 2]
            self._first += excess

    @property
    def first(self) -> int:
        """The oldest offset still held."""
        return self._first

    def slice(self, start: int, end: int | None = None) -> bytes:
        """Samples from ``start`` to ``end`` (absolute offsets), clamped to what is held."""
        end = self.total if end is None else min(end, self.total)
        start = max(start, self._first)
        if end <= start:
            return b""
        return bytes(self._pcm[(start - self._first) * 2 : (end - self._first) * 2])


class WebRtcInputResampler:
    """Decoded WebRTC audio frames (any rate and layout) to 16 kHz mono PCM16."""

    def __init__(self) -> None:
        self._resampler = av.AudioResampler(format="s16", layout="mono", rate=INPUT_RATE)

    def convert(self, frame: av.AudioFrame) -> bytes:
        return b"".join(bytes(out.planes[0])[: out.samples * 2] for out in self._resampler.resample(frame))


class PcmResampler:
    """Streaming PCM16 mono resampling (e.g. the Realtime API's 24 kHz to 16 kHz)."""

    def __init__(self, in_rate: int, out_rate: int) -> None:
        self._stream = soxr.ResampleStream(in_rate, out_rate, 1, dtype="int16", quality="HQ")

    def convert(self, pcm16: bytes) -> bytes:
        samples = np.frombuffer(pcm16, dtype="<i2")
        return np.asarray(self._stream.resample_chunk(samples), dtype="<i2").tobytes()


# Called with each piece of audio as it starts playing (silence included), its rate and the
# monotonic time it starts: the echo guard's reference.
PlayedTap = Callable[[bytes, int, float], None]


class AudioOutput(Protocol):
    """Where a session's assistant audio goes, and what it knows about its playback."""

    sample_rate: int
    on_played: PlayedTap | None

    def write(self, pcm16: bytes) -> None:
        """Queue audio for playback."""

    def clear(self) -> int:
        """Drop queued audio that has not been played; return how many samples were dropped."""

    def pause(self) -> None:
        """Stop playing (silence goes out) but keep what is queued."""

    def resume(self) -> None:
        """Play on from where ``pause`` stopped."""

    @property
    def played_samples(self) -> int:
        """Samples played out since the session began."""

    @property
    def queued_samples(self) -> int:
        """Samples written and not yet played."""

    async def drained(self) -> None:
        """Wait until everything written so far has been played."""


class AssistantAudioTrack(MediaStreamTrack):
    """The outgoing RTP audio track: queued assistant audio in 20 ms frames at 48 kHz, paced in
    real time, silence when there is nothing to say."""

    kind = "audio"
    sample_rate = WEBRTC_RATE

    def __init__(self, on_started: Callable[[], None] | None = None) -> None:
        super().__init__()
        self.on_played: PlayedTap | None = None
        self._paused = False
        self._queue = bytearray()
        self._frame_samples = WEBRTC_RATE * FRAME_MS // 1000
        self._start: float | None = None
        self._timestamp = 0
        self._played = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._on_started = on_started

    def write(self, pcm16: bytes) -> None:
        if pcm16 and self._idle.is_set():
            self._idle.clear()
            if self._on_started is not None:
                self._on_started()
        self._queue += pcm16

    def clear(self) -> int:
        dropped = len(self._queue) // 2
        self._queue.clear()
        self._paused = False
        self._idle.set()
        return dropped

    def pause(self) -> None:
        self._paused = True

    def resume(self) -> None:
        self._paused = False

    @property
    def played_samples(self) -> int:
        return self._played

    @property
    def queued_samples(self) -> int:
        return len(self._queue) // 2

    async def drained(self) -> None:
        await self._idle.wait()

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = clock.now()
        else:
            self._timestamp += self._frame_samples
            # Pacing: RTP frames leave at the rate they play, so queued audio stays here, where a
            # barge-in can still drop it, instead of in the browser's jitter buffer.
            delay = self._start + self._timestamp / WEBRTC_RATE - clock.now()
            if delay > 0:
                await asyncio.sleep(delay)
        wanted = self._frame_samples * 2
        if self._paused:
            chunk = bytes(wanted)
        else:
            chunk = bytes(self._queue[:wanted])
            del self._queue[:wanted]
            self._played += len(chunk) // 2
            if len(chunk) < wanted:
                chunk += bytes(wanted - len(chunk))
                self._idle.set()
        if self.on_played is not None:
            self.on_played(chunk, WEBRTC_RATE, clock.now())
        frame = av.AudioFrame.from_ndarray(
            np.frombuffer(chunk, dtype="<i2").reshape(1, -1), format="s16", layout="mono"
        )
        frame.sample_rate = WEBRTC_RATE
        frame.pts = self._timestamp
        frame.time_base = fractions.Fraction(1, WEBRTC_RATE)
        return frame


class PlaybackClock:
    """Assistant audio sent in events (WebSocket): the client plays it, so playback is modelled
    as real time from the moment audio is sent (what a client playing it at once hears)."""

    def __init__(self, sample_rate: int, send: Callable[[bytes], None]) -> None:
        self.sample_rate = sample_rate
        self.on_played: PlayedTap | None = None
        self._send = send
        self._ends_at = 0.0  # monotonic time the audio sent so far finishes playing
        self._sent = 0
        self._dropped = 0
        self._paused: bytearray | None = None  # audio kept back while paused (not sent yet)
        self._unpaused = asyncio.Event()
        self._unpaused.set()

    def write(self, pcm16: bytes) -> None:
        if self._paused is not None:
            self._paused += pcm16
            return
        now = clock.now()
        starts = max(self._ends_at, now)
        self._ends_at = starts + len(pcm16) / 2 / self.sample_rate
        self._sent += len(pcm16) // 2
        if self.on_played is not None:
            self.on_played(pcm16, self.sample_rate, starts)
        self._send(pcm16)

    def clear(self) -> int:
        unplayed = max(0.0, self._ends_at - clock.now())
        self._ends_at = clock.now()
        dropped = int(unplayed * self.sample_rate)
        self._dropped += dropped
        if self._paused is not None:
            dropped += len(self._paused) // 2
            self._paused = None
            self._unpaused.set()
        return dropped

    def pause(self) -> None:
        """Send nothing more until ``resume`` (what the client holds already, it plays)."""
        if self._paused is None:
            self._paused = bytearray()
            self._unpaused.clear()

    def resume(self) -> None:
        held, self._paused = self._paused, None
        self._unpaused.set()
        if held:
            self.write(bytes(held))

    @property
    def played_samples(self) -> int:
        unplayed = max(0.0, self._ends_at - clock.now())
        return self._sent - self._dropped - int(unplayed * self.sample_rate)

    @property
    def queued_samples(self) -> int:
        unplayed = max(0.0, self._ends_at - clock.now())
        return int(unplayed * self.sample_rate) + (len(self._paused) // 2 if self._paused is not None else 0)

    async def drained(self) -> None:
        while True:
            delay = self._ends_at - clock.now()
            if delay > 0:
                await asyncio.sleep(delay)  # the client's playback clock, not a race
            elif self._paused:
                await self._unpaused.wait()  # kept-back audio plays once resumed (or is cleared)
            else:
                return
