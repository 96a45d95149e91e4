"""TTS settings: documented defaults, voices by path, a default voice that must exist, --help."""

import subprocess
import sys
from pathlib import Path

import pytest

from services.common.settings import parse_settings
from services.tts.settings import BUNDLED_VOICE_NAME, TtsSettings
from tests.support.processes import REPO_ROOT


def test_defaults_bind_loopback_on_the_documented_ports() -> None:
    settings = parse_settings(TtsSettings, [])
    assert (settings.host, settings.port, settings.metrics_port) == ("127.0.0.1", 50053, 9053)
    assert settings.default_voice == BUNDLED_VOICE_NAME and settings.bundled_voice


def test_piper_voices_by_path_from_flags_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = parse_settings(TtsSettings, ["--piper-voices", "amy=/v/amy.onnx", "--piper-voices", "bob=/v/bob.onnx"])
    assert settings.piper_voices == {"amy": Path("/v/amy.onnx"), "bob": Path("/v/bob.onnx")}
    monkeypatch.setenv("PARLEY_TTS_PIPER_VOICES", '{"cy": "/v/cy.onnx"}')
    monkeypatch.setenv("PARLEY_TTS_DEFAULT_VOICE", "cy")
    settings = parse_settings(TtsSettings, [])
    assert settings.piper_voices == {"cy": Path("/v/cy.onnx")} and settings.default_voice == "cy"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--default-voice", "nobody"], "default voice 'nobody' is not among the voices loaded"),
        (["--no-bundled-voice"], "no voice to load"),
        (["--synthesis-threads", "0"], "--synthesis-threads"),
    ],
)
def test_bad_settings_exit_with_a_clear_message(argv: list[str], message: str, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_info:
        parse_settings(TtsSettings, argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_help_explains_every_option() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "services.tts", "--help"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    for name, field in TtsSettings.model_fields.items():
        assert f"--{name.replace('_', '-')}" in result.stdout
        assert field.description, f"{name} has no description"
    assert "PARLEY_TTS_" in result.stdout
