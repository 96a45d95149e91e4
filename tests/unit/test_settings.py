"""Typed settings: flags over environment over defaults, --help for every option, clear errors."""

import subprocess
import sys

import pytest
from pydantic_settings import BaseSettings

from services.common.settings import parse_settings
from services.llm.settings import LlmSettings
from services.vad.settings import VadSettings
from tests.support.processes import REPO_ROOT


def test_defaults_bind_loopback_on_the_documented_ports() -> None:
    settings = parse_settings(VadSettings, [])
    assert (settings.host, settings.port, settings.metrics_port) == ("127.0.0.1", 50051, 9051)


def test_environment_is_read_and_flags_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PARLEY_VAD_PORT", "6000")
    monkeypatch.setenv("PARLEY_VAD_THRESHOLD", "0.7")
    settings = parse_settings(VadSettings, ["--port", "7000"])
    assert settings.port == 7000
    assert settings.threshold == 0.7


def test_invalid_value_exits_with_a_clear_message(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        parse_settings(VadSettings, ["--threshold", "1.5"])
    assert exit_info.value.code == 2
    assert "--threshold" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("module", "settings_cls", "prefix"),
    [("services.vad", VadSettings, "PARLEY_VAD_"), ("services.llm", LlmSettings, "PARLEY_LLM_")],
)
def test_help_explains_every_option(module: str, settings_cls: type[BaseSettings], prefix: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", module, "--help"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    for name, field in settings_cls.model_fields.items():
        assert f"--{name.replace('_', '-')}" in result.stdout
        assert field.description, f"{name} has no description"
    assert prefix in result.stdout
