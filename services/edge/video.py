"""The camera in omni mode: a call's video track, sampled about once a second as JPEG.

The page limits its camera sender to a low frame rate (``maxFramerate`` 2), so the edge decodes
little; of what arrives it keeps only the newest frame and encodes one every
1/``frames_per_second`` seconds, scaled down to ``max_side`` pixels, off the event loop. The
session sends the newest picture with the user's speech (one as a turn opens, then one per second
of speech, up to a per-turn limit).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import time
from collections.abc import Callable

import av
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack


class CameraFrames:
    def __init__(
        self,
        frames_per_second: float = 1.0,
        max_side: int = 640,
        quality: int = 80,
        wanted: Callable[[], bool] = lambda: True,
    ) -> None:
        self.frames_per_second = frames_per_second
        self._wanted = wanted  # pictures are encoded only while this says so (omni mode)
        self._max_side = max_side
        self._quality = quality
        self._newest: av.VideoFrame | None = None
        self.latest: bytes | None = None  # the newest sampled picture, JPEG
        self.latest_at = 0.0  # when it was taken (monotonic)
        self.sampled = 0

    async def run(self, track: MediaStreamTrack) -> None:
        """Read the track until it ends, sampling as it goes."""
        sampler = asyncio.create_task(self._sample())
        try:
            with contextlib.suppress(MediaStreamError):
                while True:
                    self._newest = await track.recv()  # type: ignore[assignment]
        finally:
            sampler.cancel()

    async def _sample(self) -> None:
        while True:
            await asyncio.sleep(1 / self.frames_per_second)  # the sampling period, not a race
            frame, self._newest = self._newest, None
            if frame is None or not self._wanted():
                continue  # no new frame since the last sample (camera off or stalled), or not wanted
            self.latest = await asyncio.to_thread(self._encode, frame)
            self.latest_at = time.monotonic()
            self.sampled += 1

    def _encode(self, frame: av.VideoFrame) -> bytes:
        image = frame.to_image()
        image.thumbnail((self._max_side, self._max_side))
        out = io.BytesIO()
        image.convert("RGB").save(out, format="JPEG", quality=self._quality)
        return out.getvalue()

    def fresh(self, max_age: float = 3.0) -> bytes | None:
        """The newest picture, if it is recent enough to show what the camera sees now."""
        if self.latest is None or time.monotonic() - self.latest_at > max_age:
            return None
        return self.latest
