"""The README's grpcurl commands, copied out of the README and run against the real services
(only the addresses are swapped for the test services' free ports)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.support.processes import REPO_ROOT, ServiceProcess

DEFAULT_ADDRESS = {"vad": "127.0.0.1:50051", "llm": "127.0.0.1:50052", "tts": "127.0.0.1:50053"}
SERVICE_NAME = {
    "vad": "parley.v1.VoiceActivityService",
    "llm": "parley.v1.ConversationService",
    "tts": "parley.v1.SpeechSynthesisService",
}


def readme_blocks() -> dict[str, str]:
    text = (REPO_ROOT / "README.md").read_text()
    blocks = dict(re.findall(r"<!-- grpcurl: (\w+)[^>]*-->\n```sh\n(.*?)\n```", text, re.DOTALL))
    assert set(blocks) == set(DEFAULT_ADDRESS), f"README grpcurl blocks: {sorted(blocks)}"
    return blocks


def run_block(name: str, service: ServiceProcess, workdir: Path) -> str:
    script = readme_blocks()[name].replace(DEFAULT_ADDRESS[name], service.grpc_address).replace("/tmp/", f"{workdir}/")
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, f"README {name} commands failed:\n{result.stderr[-3000:]}"
    assert f"{SERVICE_NAME[name]}\n" in result.stdout or SERVICE_NAME[name] in result.stdout.splitlines()
    return result.stdout


def test_vad_commands(vad_service: ServiceProcess, tmp_path: Path) -> None:
    out = run_block("vad", vad_service, tmp_path)
    assert '"status": "SERVING"' in out
    assert '"speech_started"' in out and '"speech_ended"' in out, "the stream from a file finds the speech"
    assert '"turn_scored"' in out and '"turn_ended"' in out, "and judges where the turn ends"


def test_llm_commands(llm_service: ServiceProcess, tmp_path: Path) -> None:
    out = run_block("llm", llm_service, tmp_path)
    assert '"status": "SERVING"' in out
    assert "Paris" in out
    assert "max_sessions" in out


def test_tts_commands(tts_service: ServiceProcess, tmp_path: Path) -> None:
    out = run_block("tts", tts_service, tmp_path)
    assert '"status": "SERVING"' in out
    assert "en_US-joe-medium" in out
    wav = tmp_path / "speech.wav"
    assert wav.stat().st_size > 16000, "the stream's audio was saved as a WAV file"


@pytest.fixture(autouse=True)
def _grpcurl_installed() -> None:
    if not (REPO_ROOT / ".venv" / "bin" / "grpcurl").exists():
        pytest.fail("grpcurl is missing from .venv/bin (make install puts it there)")
