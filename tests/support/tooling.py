"""Standard tools against a running service: grpcurl (from the venv) and the /metrics page."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

from tests.support.processes import ServiceProcess

GRPCURL = str(Path(sys.executable).with_name("grpcurl"))


def grpcurl(service: ServiceProcess, *args: str, flags: tuple[str, ...] = (), stdin: str | None = None) -> str:
    """``grpcurl -plaintext [flags] ADDRESS args...`` must succeed; returns what it printed."""
    result = subprocess.run(
        [GRPCURL, "-plaintext", *flags, service.grpc_address, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def json_stream(text: str) -> list[dict]:
    """The JSON objects grpcurl prints one after another for a streaming call."""
    decoder, position, out = json.JSONDecoder(), 0, []
    while position < len(text.rstrip()):
        while text[position].isspace():
            position += 1
        value, position = decoder.raw_decode(text, position)
        out.append(value)
    return out


def scrape_metrics(service: ServiceProcess) -> str:
    """The service's /metrics page, checked to be Prometheus text."""
    with urllib.request.urlopen(service.metrics_url, timeout=10) as response:
        assert response.headers["Content-Type"].startswith("text/plain")
        return response.read().decode()


def metric_value(text: str, name: str, default: float | None = None) -> float:
    """A sample's value from Prometheus text (``name`` with its labels); ``default`` when it is
    absent (a labelled counter before its first use), else an assertion error."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    if default is not None:
        return default
    raise AssertionError(f"{name} not in metrics")
