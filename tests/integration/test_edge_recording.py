"""Session recording: complete, consistent files after a hang-up and after the edge is killed."""

from __future__ import annotations

import json
import os
import time
import wave
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.support.counts import wait_for_edge_sessions
from tests.support.processes import ServiceProcess, start_edge
from tests.support.realtime_ws import realtime_socket
from tests.support.speech import speak
from tests.support.webrtc_client import RATE, RealtimeCall

QUESTION = "What is the capital of France?"


@pytest.fixture
def recording_edge(
    tmp_path: Path, vad_service: ServiceProcess, scripted_llm: ServiceProcess, tts_service: ServiceProcess
) -> Iterator[tuple[ServiceProcess, Path]]:
    folder = tmp_path / "recordings"
    edge = start_edge(vad_service, scripted_llm, tts_service, f"--record-dir={folder}", "--record-keep-sessions=3")
    yield edge, folder
    edge.stop()


def _question(text: str = QUESTION) -> np.ndarray:
    return np.concatenate((np.zeros(RATE // 5, np.float32), speak(text, RATE), np.zeros(RATE * 2, np.float32)))


def _read_wav(path: Path) -> tuple[np.ndarray, int]:
    with wave.open(str(path)) as wav:
        frames = wav.readframes(wav.getnframes())
        assert len(frames) == wav.getnframes() * 2, "the header's length matches the data"
        assert os.path.getsize(path) == 44 + len(frames), "no data beyond what the header says"
        return np.frombuffer(frames, dtype="<i2").astype(np.float64), wav.getframerate()


def _loud_span(samples: np.ndarray, rate: int) -> tuple[float, float]:
    """First and last 20 ms block with speech in it, in seconds."""
    block = rate // 50
    levels = np.sqrt((samples[: len(samples) // block * block].reshape(-1, block) ** 2).mean(axis=1))
    loud = np.flatnonzero(levels > 300)
    assert loud.size, "there is sound in the file"
    return loud[0] * block / rate, (loud[-1] + 1) * block / rate


def _events(folder: Path) -> list[dict]:
    lines = (folder / "events.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


async def test_a_recorded_call_leaves_a_complete_consistent_folder(
    recording_edge: tuple[ServiceProcess, Path],
) -> None:
    edge, recordings = recording_edge
    call = RealtimeCall(edge.url, receive_prefetch=1)
    try:
        await call.connect({"type": "realtime", "parley": {"mode": "half_duplex", "record": True}})
        await call.wait_for("session.created")
        call.microphone.play(_question())
        done = await call.wait_for("response.done", timeout=60)
        await call.wait_for("output_audio_buffer.stopped", timeout=30)
    finally:
        await call.close()
    await wait_for_edge_sessions(edge, 0)
    (folder,) = recordings.iterdir()
    assert folder.name.endswith(call.call_id)
    meta = json.loads((folder / "session.json").read_text())
    assert meta["session_id"] == call.call_id and meta["transport"] == "webrtc" and meta["mode"] == "half_duplex"
    assert meta["end_reason"] and meta["ended_at"] and meta["duration_ms"] > 3000
    events = _events(folder)
    assert [e["t_ms"] for e in events] == sorted(e["t_ms"] for e in events)
    server = [e["event"]["type"] for e in events if e["from"] == "server"]
    assert server[0] == "session.created" and "response.done" in server
    assert any(e["event"].get("response", {}).get("id") == done["response"]["id"] for e in events)
    # The two voices share the call's timeline: the answer comes after the question.
    user, user_rate = _read_wav(folder / "user.wav")
    assistant, assistant_rate = _read_wav(folder / "assistant.wav")
    assert (user_rate, assistant_rate) == (16000, 48000)
    assert abs(len(user) / user_rate * 1000 - meta["duration_ms"]) < 1500
    assert len(assistant) / assistant_rate * 1000 <= meta["duration_ms"] + 500
    question_end = _loud_span(user, user_rate)[1]
    answer_start, answer_end = _loud_span(assistant, assistant_rate)
    assert question_end < answer_start < question_end + 5, (question_end, answer_start)
    assert answer_end - answer_start > 0.5


async def test_killing_the_edge_leaves_readable_files(recording_edge: tuple[ServiceProcess, Path]) -> None:
    edge, recordings = recording_edge
    call = RealtimeCall(edge.url, receive_prefetch=1)
    try:
        session = {"type": "realtime", "parley": {"mode": "half_duplex", "record": True}}
        await call.connect({**session, "instructions": "Answer in at least five long sentences."})
        await call.wait_for("session.created")
        call.microphone.play(_question("Tell me about the history of the city of Paris."))
        await call.wait_for("output_audio_buffer.started", timeout=60)
        # Well past the one-second flush: some of the answer is on disk whatever the timing.
        await call.wait_until(lambda: call.loud_seconds() > 2.5, timeout=60)
        killed_at = time.monotonic()
        edge.process.kill()
        edge.process.wait()
    finally:
        await call.close()
    (folder,) = recordings.iterdir()
    meta = json.loads((folder / "session.json").read_text())
    assert meta["session_id"] == call.call_id and meta["ended_at"] is None, "it never ended cleanly"
    events = _events(folder)  # every line is whole JSON
    assert events[0]["event"]["type"] == "session.created"
    assert "response.created" in [e["event"]["type"] for e in events]
    user, user_rate = _read_wav(folder / "user.wav")
    lasted = killed_at - call.microphone.clip_started[0]
    assert len(user) / user_rate > lasted - 1.5, "at most about the last second is lost"
    assistant, assistant_rate = _read_wav(folder / "assistant.wav")
    assert _loud_span(assistant, assistant_rate)[0] > 0


async def test_old_recordings_are_removed_and_recording_needs_a_folder(
    recording_edge: tuple[ServiceProcess, Path], edge_service: ServiceProcess
) -> None:
    edge, recordings = recording_edge
    recordings.mkdir(parents=True, exist_ok=True)
    for index in range(4):  # older recordings than any the edge makes now
        old = recordings / f"20200101T00000{index}Z-sess_old{index}"
        old.mkdir()
        (old / "session.json").write_text("{}")
    async with realtime_socket(edge.url) as socket:
        await socket.send({"type": "session.update", "session": {"parley": {"record": True}}})
        await socket.next_event("session.updated")
    await wait_for_edge_sessions(edge, 0)
    kept = sorted(p.name for p in recordings.iterdir())
    assert len(kept) == 3 and kept[:2] == ["20200101T000002Z-sess_old2", "20200101T000003Z-sess_old3"]
    # An edge without --record-dir says so.
    async with realtime_socket(edge_service.url) as socket:
        await socket.send({"type": "session.update", "session": {"parley": {"record": True}}})
        error = await socket.next_event("error")
    assert error["error"]["code"] == "recording_not_enabled"
