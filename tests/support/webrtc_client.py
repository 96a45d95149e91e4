"""A Python WebRTC client of the edge (aiortc), for tests and benchmarks: plays audio into the
call as its microphone, records what comes back, and exchanges events on ``oai-events``."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import av
import numpy as np
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack, VideoStreamTrack

from services.edge.audio import AssistantAudioTrack
from services.edge.webrtc import limit_ice_host_addresses, shorten_audio_jitter_buffer
from tests.support.conformance import NonConformingEvent, check_server_event

RATE = 48000
FRAME = 960  # 20 ms


class MicrophoneTrack(AssistantAudioTrack):
    """Plays queued 48 kHz float samples in real time, silence in between (the edge's own paced
    track, pointed the other way); notes when each queued clip's last sample went out."""

    def __init__(self) -> None:
        super().__init__()
        self.clip_started: list[float] = []  # monotonic time each clip's first sample was sent
        self.clip_ended: list[float] = []  # monotonic time each clip's last sample was sent
        self._clip_starts: list[int] = []  # played-sample counts at which the queued clips start
        self._clip_ends: list[int] = []  # played-sample counts at which the queued clips end
        self._queued = 0
        self._played_out = asyncio.Event()
        self._echo = np.zeros(0, dtype=np.float32)  # sound from the loudspeaker, mixed in as it comes

    def play(self, samples: np.ndarray) -> None:
        pcm = (np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes()
        self._clip_starts.append(self._queued)
        self._queued += len(pcm) // 2
        self._clip_ends.append(self._queued)
        self._played_out.clear()
        self.write(pcm)

    def hear(self, samples: np.ndarray) -> None:
        """Mix ``samples`` (int16 scale) into what the microphone sends next: the loudspeaker's
        sound reaching the microphone."""
        self._echo = np.concatenate((self._echo, samples.astype(np.float32)))

    async def played_out(self) -> None:
        """Wait until every queued clip has been sent."""
        await self._played_out.wait()

    async def recv(self) -> av.AudioFrame:
        frame = await super().recv()
        while self._clip_starts and self._clip_starts[0] < self.played_samples:
            self._clip_starts.pop(0)
            self.clip_started.append(time.monotonic())
        if len(self._echo) >= FRAME:
            mixed = frame.to_ndarray().reshape(-1).astype(np.float32) + self._echo[:FRAME]
            self._echo = self._echo[FRAME:]
            out = av.AudioFrame.from_ndarray(
                np.clip(mixed, -32768, 32767).astype("<i2").reshape(1, -1), format="s16", layout="mono"
            )
            out.sample_rate, out.pts, out.time_base = frame.sample_rate, frame.pts, frame.time_base
            frame = out
        while self._clip_ends and self._clip_ends[0] <= self.played_samples:
            self._clip_ends.pop(0)
            self.clip_ended.append(time.monotonic())
            if not self._clip_ends:
                self._played_out.set()
        return frame


class RealtimeCall:
    """One WebRTC call to the edge. ``events`` collects server events; ``audio`` the received
    assistant audio (48 kHz mono int16) with the arrival time of each frame in ``audio_times``."""

    def __init__(
        self,
        base_url: str,
        receive_prefetch: int = 4,
        echo_gain: float = 0.0,
        echo_delay_ms: int = 0,
        camera: bool = False,
    ) -> None:
        """``echo_gain``: the received audio comes back into the microphone at this gain (a
        loudspeaker heard by the microphone, no echo cancellation), ``echo_delay_ms`` later
        than it arrives."""
        limit_ice_host_addresses(["127.0.0.1"])  # the client's media stays on loopback too
        self._receive_prefetch = receive_prefetch
        self._echo_gain = echo_gain
        self.base_url = base_url.rstrip("/")
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.microphone = MicrophoneTrack()
        self.camera = VideoStreamTrack() if camera else None  # aiortc's test pattern, 30 frames/s
        if echo_gain:
            self.microphone.hear(np.zeros(RATE * echo_delay_ms // 1000))
        self.events: list[dict[str, Any]] = []
        self.nonconforming: list[str] = []  # events that do not validate (tests/support/conformance.py)
        self.audio: list[np.ndarray] = []
        self.audio_times: list[float] = []
        self.frame_rms: list[float] = []  # of each received frame, kept as they come (cheap to ask often)
        self.call_id = ""
        self._new_event = asyncio.Condition()
        self._tasks: list[asyncio.Task[None]] = []
        self._channel = self.pc.createDataChannel("oai-events")
        self._channel_open = asyncio.Event()

    async def connect(self, session: dict[str, Any] | None = None) -> None:
        self.pc.addTrack(self.microphone)
        if self.camera is not None:
            self.pc.addTrack(self.camera)

        @self.pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            self._tasks.append(asyncio.create_task(self._record(track)))

        @self._channel.on("open")
        def on_open() -> None:
            self._channel_open.set()

        @self._channel.on("message")
        def on_message(message: str) -> None:
            try:  # every event, strictly as the API defines it; a failure fails the test's next wait
                self.events.append(check_server_event(message))
            except NonConformingEvent as exc:
                self.nonconforming.append(str(exc))
                self.events.append(json.loads(message))
            self._tasks.append(asyncio.create_task(self._notify()))

        await self.pc.setLocalDescription(await self.pc.createOffer())
        async with aiohttp.ClientSession() as http:
            if session is None:
                request = http.post(
                    f"{self.base_url}/v1/realtime/calls",
                    data=self.pc.localDescription.sdp,
                    headers={"Content-Type": "application/sdp"},
                )
            else:
                form = aiohttp.FormData(default_to_multipart=True)
                form.add_field("sdp", self.pc.localDescription.sdp)
                form.add_field("session", json.dumps(session))
                request = http.post(f"{self.base_url}/v1/realtime/calls", data=form)
            async with request as response:
                body = await response.text()
                if response.status != 201:
                    raise RuntimeError(f"call refused: {response.status} {body}")
                self.call_id = response.headers["Location"].rsplit("/", 1)[-1]
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=body, type="answer"))
        if self._receive_prefetch != 4:  # aiortc's own default
            for transceiver in self.pc.getTransceivers():
                shorten_audio_jitter_buffer(transceiver.receiver, self._receive_prefetch)
        await asyncio.wait_for(self._channel_open.wait(), 10)

    async def _notify(self) -> None:
        async with self._new_event:
            self._new_event.notify_all()

    async def _record(self, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                self.audio_times.append(time.monotonic())
                samples = frame.to_ndarray().reshape(-1)
                if frame.layout.name == "stereo":
                    samples = samples[::2]
                self.audio.append(samples.astype(np.int16))
                self.frame_rms.append(float(np.sqrt(np.mean(samples.astype(np.float64) ** 2))))
                if self._echo_gain:
                    self.microphone.hear(samples.astype(np.float32) * self._echo_gain)
                await self._notify()

    def send(self, event: dict[str, Any]) -> None:
        self._channel.send(json.dumps(event))

    async def wait_for(self, event_type: str, timeout: float = 30, after: int = 0) -> dict[str, Any]:  # noqa: ASYNC109
        """The first event of ``event_type`` at index ``after`` or later; TimeoutError otherwise."""

        def found() -> dict[str, Any] | None:
            return next((e for e in self.events[after:] if e["type"] == event_type), None)

        async with self._new_event:
            await asyncio.wait_for(self._new_event.wait_for(lambda: found() is not None), timeout)
        self.check_conformance()
        event = found()
        assert event is not None
        return event

    async def wait_until(self, condition: Callable[[], bool], timeout: float = 30) -> None:  # noqa: ASYNC109
        """Wait until ``condition()`` holds, checked at every event and every received frame."""
        async with self._new_event:
            await asyncio.wait_for(self._new_event.wait_for(condition), timeout)
        self.check_conformance()

    def check_conformance(self) -> None:
        """Fail if any event so far did not validate against the API's types."""
        if self.nonconforming:
            raise NonConformingEvent("\n".join(self.nonconforming))

    def of_type(self, event_type: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] == event_type]

    def received_audio(self) -> np.ndarray:
        return np.concatenate(self.audio) if self.audio else np.zeros(0, dtype=np.int16)

    def loud_seconds(self, rms_threshold: float = 300) -> float:
        """Seconds of received audio in frames whose RMS is above ``rms_threshold``."""
        return sum(len(a) for a, rms in zip(self.audio, self.frame_rms, strict=False) if rms > rms_threshold) / RATE

    def last_loud_time(self, after: float, before: float, threshold: int = 500) -> float | None:
        """Arrival time of the last received frame between ``after`` and ``before`` with a sample
        above ``threshold``."""
        found = None
        for when, samples in zip(self.audio_times, self.audio, strict=False):
            if after <= when < before and np.abs(samples).max(initial=0) > threshold:
                found = when
        return found

    def first_loud_time(self, after: float, threshold: int = 500) -> float | None:
        """Arrival time of the first received frame after ``after`` with a sample above ``threshold``."""
        for when, samples in zip(self.audio_times, self.audio, strict=False):
            if when >= after and np.abs(samples).max(initial=0) > threshold:
                return when
        return None

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await self.pc.close()
        self.check_conformance()
