"""Voices: the bundled Piper voice is the pinned file, its synthesis can be cancelled, and more
Piper voices can be loaded by path."""

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import grpc
import numpy as np
import pytest
from parley.v1 import speech_pb2, speech_pb2_grpc

from services.common.bundled import verify_sha256
from services.tts.backends import Cancellation
from services.tts.backends.piper import (
    BUNDLED_CONFIG,
    BUNDLED_MODEL,
    PiperSpeechVoice,
    bundled_voice_path,
    config_path_for,
)
from tests.support.processes import REPO_ROOT, start_service
from tests.support.tts_client import synthesize


@pytest.fixture(scope="module")
def voice() -> PiperSpeechVoice:
    return PiperSpeechVoice("joe", bundled_voice_path())


def test_bundled_voice_is_the_pinned_files() -> None:
    verify_sha256(BUNDLED_MODEL.locate(), BUNDLED_MODEL.sha256)
    verify_sha256(BUNDLED_CONFIG.locate(), BUNDLED_CONFIG.sha256)
    assert config_path_for(bundled_voice_path()) == BUNDLED_CONFIG.locate()


def test_a_tampered_voice_is_refused(tmp_path: Path) -> None:
    tampered = tmp_path / "voice.onnx.json"
    tampered.write_bytes(BUNDLED_CONFIG.locate().read_bytes() + b" ")
    with pytest.raises(ValueError, match="refusing to load"):
        verify_sha256(tampered, BUNDLED_CONFIG.sha256)


def test_voice_reports_what_it_is_and_speaks_a_sentence_at_a_time(voice: PiperSpeechVoice) -> None:
    assert (voice.info.language, voice.info.native_sample_rate, voice.info.backend) == ("en-US", 22050, "piper")
    sentences = list(voice.synthesize("One sentence. And another one.", 1.0, Cancellation()))
    assert len(sentences) == 2
    assert all(s.dtype == np.float32 and 0.05 < np.abs(s).max() <= 1.0 for s in sentences)


def test_cancelling_stops_between_sentences(voice: PiperSpeechVoice) -> None:
    cancellation = Cancellation()
    spoken = []
    for audio in voice.synthesize("First sentence here. Second sentence here. Third one too.", 1.0, cancellation):
        spoken.append(audio)
        cancellation.cancel()
    assert len(spoken) == 1


def test_cancelling_interrupts_a_model_call(voice: PiperSpeechVoice) -> None:
    """onnxruntime's terminate flag stops a call; a cancelled one ends at once, without audio."""
    cancellation = Cancellation()
    cancellation.cancel()
    ids = voice._voice.phonemes_to_ids(voice._voice.phonemize("A sentence that is not spoken.")[0])
    assert voice._run(ids, 1.0, cancellation) is None
    assert voice._run(ids, 1.0, Cancellation()) is not None


async def test_more_piper_voices_load_by_path(tmp_path: Path) -> None:
    model = bundled_voice_path()
    (tmp_path / "amy.onnx").symlink_to(model)
    (tmp_path / "amy.onnx.json").symlink_to(config_path_for(model))
    service = start_service("services.tts", "--piper-voices", f"amy={tmp_path / 'amy.onnx'}", "--default-voice", "amy")
    try:
        async with grpc.aio.insecure_channel(service.grpc_address) as channel:
            listed = await speech_pb2_grpc.SpeechSynthesisServiceStub(channel).ListVoices(
                speech_pb2.ListVoicesRequest()
            )
            assert [v.name for v in listed.voices] == ["amy", "en_US-joe-medium"]
            assert listed.default_voice == "amy"
            for name in ("amy", "en_US-joe-medium", ""):
                synthesis = await synthesize(channel, "Which voice is this?", voice=name)
                assert synthesis.done.total_samples > 16000 // 2
    finally:
        assert service.stop() == 0


def test_a_missing_voice_file_stops_the_service_with_a_clear_message(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "services.tts",
            "--port",
            "0",
            "--metrics-port",
            "-1",
            "--piper-voices",
            f"ghost={tmp_path / 'ghost.onnx'}",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=os.environ,
    )
    assert result.returncode != 0
    assert "ghost" in result.stderr and "does not exist" in result.stderr


async def test_the_service_warms_up_before_it_listens() -> None:
    service = start_service("services.tts")
    try:
        messages = [str(record.get("msg")) for record in service.logs]
        assert messages.index("voice ready") < messages.index("tts listening")
    finally:
        await asyncio.to_thread(service.stop)
