"""The call page in a real browser: Debian's Chromium, driven by playwright-core
(``tests/e2e/drive_call.mjs``), with a fake microphone playing a question made at test time.
WebRTC stays on loopback: the edge offers only 127.0.0.1 and Chromium may use loopback."""

from __future__ import annotations

import json
import shutil
import subprocess
import wave
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.support.processes import REPO_ROOT, ServiceProcess, start_edge
from tests.support.speech import speak
from tests.support.transcribe import spoken_words

ARTIFACTS = REPO_ROOT / "artifacts" / "e2e"
DRIVER = REPO_ROOT / "tests" / "e2e" / "drive_call.mjs"
CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="module")
def browser_edge(
    vad_service: ServiceProcess, llm_service: ServiceProcess, tts_service: ServiceProcess
) -> Iterator[ServiceProcess]:
    if not Path(CHROMIUM).exists() or shutil.which("node") is None:
        pytest.fail("the browser tests need Debian's chromium and node (make test installs them)")
    service = start_edge(vad_service, llm_service, tts_service)
    yield service
    assert service.stop() == 0


@pytest.fixture(scope="module")
def scripted_edge(
    vad_service: ServiceProcess, scripted_llm: ServiceProcess, tts_service: ServiceProcess
) -> Iterator[ServiceProcess]:
    """An edge in front of the scripted LLM: for the calls whose checks are about what the edge
    does (interruption, pictures), not about the bundled model's words."""
    service = start_edge(vad_service, scripted_llm, tts_service)
    yield service
    assert service.stop() == 0


def _fake_microphone(path: Path, text: str, *more: str | float) -> Path:
    """A 48 kHz WAV: a breath of silence, the question, then enough silence for the turn to end
    (Chromium loops the file). ``more``: further pauses (seconds) and utterances."""
    rate = 48000
    parts = [np.zeros(rate // 2), speak(text, rate)]
    for part in more:
        parts.append(np.zeros(int(rate * part)) if isinstance(part, float) else speak(part, rate))
    samples = np.concatenate((*parts, np.zeros(int(rate * 2.5))))
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())
    return path


def _drive(edge: ServiceProcess, name: str, tmp_path: Path, *args: str, page: str = "") -> dict:
    """Run the driver on the edge's call page (or ``page``, an address on it)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    screenshot = ARTIFACTS / f"{name}.png"
    screenshot.unlink(missing_ok=True)
    completed = subprocess.run(
        [
            "node",
            str(DRIVER),
            f"--url={page or edge.url}",
            f"--screenshot={screenshot}",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--timeout-ms=90000",
            *args,
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert completed.returncode == 0, f"driver crashed: {completed.stderr[-3000:]}"
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    (ARTIFACTS / f"{name}.json").write_text(json.dumps(result, indent=2))
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", "a screenshot is saved as a test artifact"
    return result


def test_half_duplex_call_with_a_spoken_question(browser_edge: ServiceProcess, tmp_path: Path) -> None:
    wav = _fake_microphone(tmp_path / "question.wav", "What is the capital of France?")
    result = _drive(browser_edge, "half_duplex", tmp_path, "--mode=half_duplex", f"--wav={wav}")
    assert result["ok"], result
    assert result["console_errors"] == [], result["console_errors"]
    assert result["error"] == ""
    assert {"capital", "france"} <= set(spoken_words(result["user"][0])), result["user"]
    assert "Paris" in result["assistant"][0], result["assistant"]
    assert result["remoteAudioPeak"] > 0.05, "the assistant's voice arrived on the remote track"
    assert result["remoteAudioLoudMs"] > 500
    assert result["events"]["input_audio_buffer.speech_started"] >= 1
    assert result["endOfTurn"] == {"detection": "server_vad", "reason": "silence"}
    assert result["final_state"] == "ended"


def test_half_duplex_call_answered_when_the_turn_model_hears_the_question_finished(
    browser_edge: ServiceProcess, tmp_path: Path
) -> None:
    wav = _fake_microphone(tmp_path / "question.wav", "What is the capital of France?")
    args = ("--mode=half_duplex", "--turn-end=semantic_vad", f"--wav={wav}")
    result = _drive(browser_edge, "half_duplex_semantic", tmp_path, *args)
    assert result["ok"], result
    assert result["console_errors"] == [], result["console_errors"]
    assert result["endOfTurn"]["detection"] == "semantic_vad", result["endOfTurn"]
    assert {"capital", "france"} <= set(spoken_words(result["user"][0])), result["user"]
    assert result["remoteAudioPeak"] > 0.05, "the assistant's voice arrived on the remote track"


def _playout_delay_at(samples: list[list[int]], moment: int) -> int:
    """The page's jitter-buffer delay (ms) over the interval that holds ``moment``: the first
    sample at or after it (each is the average since the one before), else the last one."""
    assert samples, "the page reports the browser's playout delay while audio plays"
    return next((ms for when, ms in samples if when >= moment), samples[-1][1])


def test_full_duplex_call_where_the_person_speaks_over_the_answer(
    scripted_edge: ServiceProcess, tmp_path: Path
) -> None:
    """The fake microphone asks for a long answer (the script's is six sentences), then, 5 s
    after its question (the answer is playing by then), asks another question over it."""
    wav = _fake_microphone(
        tmp_path / "interrupt.wav",
        "Tell me about the history of the city of Paris.",
        5.0,
        "What is the capital of Germany?",
        40.0,  # no second round of the looped file during the test
    )
    result = _drive(scripted_edge, "full_duplex", tmp_path, "--mode=full_duplex", "--responses=2", f"--wav={wav}")
    assert result["ok"], result
    assert result["console_errors"] == [], result["console_errors"]
    # The first answer went quiet soon after the second question began, and stayed quiet.
    spoke_over = result["speechStartedTimes"][1]
    second_answer = result["outputStartedTimes"][1] if len(result["outputStartedTimes"]) > 1 else float("inf")
    still_heard = [t for t in result["remoteLoudTimes"] if spoke_over <= t < second_answer]
    if still_heard:
        # The edge's part is when it stopped sending: the last audible moment less the browser's
        # own playout delay then (its jitter buffer, which grows when packets come unevenly, as
        # from loaded cores: 40-130 ms on a quiet box, 230-260 ms with one core kept busy).
        delay = _playout_delay_at(result["playoutDelays"], still_heard[-1])
        assert still_heard[-1] - delay - spoke_over < 1000, (still_heard[-1] - spoke_over, delay)
    # The transcript shows the first answer as far as it was heard.
    truncation = result["truncations"][0]
    assert truncation["transcript"] and result["assistant"][0] == truncation["transcript"], result["assistant"]
    assert result["assistantTruncated"][0] is True
    # The question asked over it was answered.
    assert {"what", "capital", "germany"} <= set(spoken_words(result["user"][-1])), result["user"]
    assert "Berlin" in result["assistant"][-1], result["assistant"]


def test_omni_call_sends_the_camera(scripted_edge: ServiceProcess, tmp_path: Path) -> None:
    """Chromium's fake camera (a test pattern) goes to the LLM with the question; the bundled
    model reads text only and says so, which it does only for a turn that came with pictures."""
    # Long silence after the question: Chromium loops the file, and omni hears it while it answers.
    wav = _fake_microphone(tmp_path / "look.wav", "What do you see in front of you?", 30.0)
    result = _drive(scripted_edge, "omni", tmp_path, "--mode=omni", f"--wav={wav}")
    assert result["ok"], result
    assert result["console_errors"] == [], result["console_errors"]
    assert result["assistant"][0].startswith("I can't see images"), result["assistant"]
    assert result["truncations"] == [], "nobody spoke over the answer"


def test_chat_call_with_a_typed_question(browser_edge: ServiceProcess, tmp_path: Path) -> None:
    result = _drive(browser_edge, "chat", tmp_path, "--mode=chat", "--text=What is the capital of France?")
    assert result["ok"], result
    assert result["console_errors"] == [], result["console_errors"]
    assert result["user"] == ["What is the capital of France?"]
    assert "Paris" in result["assistant"][0], result["assistant"]
    assert "input_audio_buffer.speech_started" not in result["events"], "chat mode runs no server VAD"
    assert result["remoteAudioPeak"] > 0.05, "chat replies are spoken too"


@pytest.fixture(scope="module")
def protected_edge(
    vad_service: ServiceProcess, scripted_llm: ServiceProcess, tts_service: ServiceProcess
) -> Iterator[ServiceProcess]:
    service = start_edge(vad_service, scripted_llm, tts_service, "--api-token=page-token-0123")
    yield service
    assert service.stop() == 0


def test_a_protected_server_is_called_with_the_token_from_the_pages_address(
    protected_edge: ServiceProcess, tmp_path: Path
) -> None:
    """The page sends the token of its address's fragment (never sent to the server as part of
    the URL) with every API request: its config, the call, the hangup."""
    page = protected_edge.url + "#token=page-token-0123"
    result = _drive(protected_edge, "chat_token", tmp_path, "--mode=chat", "--text=Say hello.", page=page)
    assert result["ok"], result
    assert result["console_errors"] == [], result["console_errors"]
    assert result["assistant"][0].startswith("Hello"), result["assistant"]
    assert not any("page-token" in str(record.get("msg")) for record in protected_edge.logs), "never logged"


def test_phone_sized_screen(browser_edge: ServiceProcess, tmp_path: Path) -> None:
    result = _drive(browser_edge, "chat_phone", tmp_path, "--mode=chat", "--text=Say hello.", "--viewport=360x740")
    assert result["ok"], result
    assert result["assistant"][0]
