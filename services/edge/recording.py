"""Session recording (opt-in): a folder per session with its metadata, events and both voices.

    <record_dir>/<UTC start>-<session id>/
        session.json      who, when, mode, settings; rewritten when the session ends
        events.jsonl      every event both ways, one JSON object a line, with the time; audio
                          payloads are left out (they are in the WAV files)
        user.wav          the microphone as the edge heard it, 16 kHz
        assistant.wav     the assistant's voice as it was played, silence included, so the two
                          files share one timeline
        frames/           omni: the camera pictures sent to the model, named by call time in ms

Everything is written as it comes and flushed to disk once a second, WAV headers included, so a
crash of the edge loses at most the last second and leaves every file readable. Old recordings
are removed when a new one starts: beyond the newest ``keep_sessions`` or older than
``keep_days``. Folder names come from the server (time and session id), never from a client.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import struct
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from services.edge import clock

log = logging.getLogger(__name__)

FLUSH_SECONDS = 1.0
_AUDIO_EVENTS = {"input_audio_buffer.append": "audio", "response.output_audio.delta": "delta"}


class WavWriter:
    """A mono PCM16 WAV file written incrementally; its header is brought up to date at each flush."""

    def __init__(self, path: Path, sample_rate: int) -> None:
        self.path = path
        self.sample_rate = sample_rate
        self._file = path.open("wb")
        self._pending = bytearray()
        self.samples = 0
        self._file.write(_wav_header(sample_rate, 0))

    def write(self, pcm16: bytes) -> None:
        self._pending += pcm16

    @property
    def pending_samples(self) -> int:
        return len(self._pending) // 2

    def flush(self) -> None:
        if self._pending:
            self._file.seek(0, os.SEEK_END)
            self._file.write(self._pending)
            self.samples += len(self._pending) // 2
            self._pending.clear()
            self._file.seek(0)
            self._file.write(_wav_header(self.sample_rate, self.samples * 2))
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self.flush()
        self._file.close()


def _wav_header(sample_rate: int, data_bytes: int) -> bytes:
    return (
        b"RIFF"
        + struct.pack("<I", 36 + data_bytes)
        + b"WAVEfmt "
        + struct.pack("<IHHIIHH", 16, 1, 1, sample_rate, sample_rate * 2, 2, 16)
        + b"data"
        + struct.pack("<I", data_bytes)
    )


class SessionRecorder:
    def __init__(self, folder: Path, metadata: dict[str, Any], input_rate: int) -> None:
        self.folder = folder
        self._started = clock.now()
        self._metadata = {**metadata, "started_at": _now_iso(), "ended_at": None, "end_reason": None}
        (folder / "frames").mkdir(parents=True)
        self._write_metadata()
        self._events = (folder / "events.jsonl").open("a", encoding="utf-8")
        self._event_lines: list[str] = []
        self._user = WavWriter(folder / "user.wav", input_rate)
        self._assistant: WavWriter | None = None  # opened at the first audio: its rate is the output's
        self._flusher = asyncio.create_task(self._flush_every_second())
        self.closed = False

    @property
    def elapsed_ms(self) -> int:
        return int((clock.now() - self._started) * 1000)

    def event(self, direction: str, event: dict[str, Any]) -> None:
        """An event sent to the client ("server") or received from it ("client")."""
        if self.closed:
            return
        field = _AUDIO_EVENTS.get(str(event.get("type")))
        if field is not None and field in event:
            event = {**event, field: f"<{len(event[field]) * 3 // 4} bytes of audio>"}
        record = {"t_ms": self.elapsed_ms, "from": direction, "event": event}
        self._event_lines.append(json.dumps(record, ensure_ascii=False, default=str) + "\n")

    def user_audio(self, pcm16: bytes) -> None:
        if not self.closed:
            self._user.write(pcm16)

    def assistant_audio(self, pcm16: bytes, sample_rate: int, when: float) -> None:
        """Audio that started playing at ``when`` (monotonic); gaps before it become silence, so
        the file keeps the call's timeline."""
        if self.closed:
            return
        if self._assistant is None:
            self._assistant = WavWriter(self.folder / "assistant.wav", sample_rate)
        written = self._assistant.samples + self._assistant.pending_samples
        gap = int((when - self._started) * sample_rate) - written
        if gap > sample_rate // 100:  # more than 10 ms behind: a pause in the playback
            self._assistant.write(bytes(2 * gap))
        self._assistant.write(pcm16)

    def frame(self, jpeg: bytes) -> None:
        if not self.closed:
            (self.folder / "frames" / f"{self.elapsed_ms:09d}.jpg").write_bytes(jpeg)

    def flush(self) -> None:
        if self._event_lines:
            self._events.write("".join(self._event_lines))
            self._event_lines.clear()
        self._events.flush()
        os.fsync(self._events.fileno())
        self._user.flush()
        if self._assistant is not None:
            self._assistant.flush()

    def close(self, reason: str) -> None:
        if self.closed:
            return
        self.closed = True
        self._flusher.cancel()
        self.flush()
        self._events.close()
        self._user.close()
        if self._assistant is not None:
            self._assistant.close()
        self._metadata.update(
            ended_at=_now_iso(),
            end_reason=reason,
            duration_ms=self.elapsed_ms,
            user_audio_samples=self._user.samples,
            assistant_audio_samples=self._assistant.samples if self._assistant else 0,
        )
        self._write_metadata()

    async def _flush_every_second(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_SECONDS)  # the flush period, not a race
            try:
                self.flush()
            except OSError as exc:  # a full disk must not end the call
                log.warning("recording flush failed", extra={"folder": str(self.folder), "error": str(exc)})

    def _write_metadata(self) -> None:
        path = self.folder / "session.json"
        temporary = path.with_suffix(".json.tmp")
        temporary.write_text(json.dumps(self._metadata, indent=2, default=str), encoding="utf-8")
        temporary.replace(path)  # readers never see half a file


def start_recording(
    record_dir: Path, session_id: str, metadata: dict[str, Any], input_rate: int, keep_sessions: int, keep_days: float
) -> SessionRecorder:
    record_dir.mkdir(parents=True, exist_ok=True)
    prune(record_dir, keep_sessions - 1, keep_days)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return SessionRecorder(record_dir / f"{stamp}-{session_id}", metadata, input_rate)


def prune(record_dir: Path, keep_sessions: int, keep_days: float) -> list[Path]:
    """Remove recordings beyond the newest ``keep_sessions`` and those older than ``keep_days``."""
    folders = sorted((p for p in record_dir.iterdir() if p.is_dir() and (p / "session.json").exists()), reverse=True)
    cutoff = time.time() - keep_days * 86400
    removed = []
    for index, folder in enumerate(folders):
        with contextlib.suppress(OSError):
            if index >= keep_sessions or (folder / "session.json").stat().st_mtime < cutoff:
                shutil.rmtree(folder)
                removed.append(folder)
    return removed


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")
