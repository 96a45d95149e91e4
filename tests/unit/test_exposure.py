"""Off loopback nothing is open without being asked: the edge needs a token (or an explicit
--insecure-no-auth), and the launcher keeps the model services and metrics on loopback."""

from __future__ import annotations

import subprocess
import sys

import pytest

from services.__main__ import LauncherSettings, commands
from services.edge.__main__ import check_exposure
from services.edge.settings import EdgeSettings
from tests.support.processes import REPO_ROOT


def test_the_edge_refuses_to_serve_beyond_loopback_without_a_token() -> None:
    """The real entry point, stopped before it binds anything."""
    completed = subprocess.run(
        [sys.executable, "-m", "services.edge", "--host", "0.0.0.0", "--port", "0"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "HOME": "/nonexistent"},
    )
    assert completed.returncode != 0
    assert "refusing to serve 0.0.0.0 without a token" in completed.stderr, completed.stderr[-2000:]
    assert "--insecure-no-auth" in completed.stderr


@pytest.mark.parametrize(
    ("options", "allowed"),
    [
        ({"host": "127.0.0.1"}, True),
        ({"host": "0.0.0.0"}, False),
        ({"host": "10.1.2.3", "api_token": "s3cret"}, True),
        ({"host": "0.0.0.0", "insecure_no_auth": True}, True),
    ],
)
def test_exposure_rule(options: dict, allowed: bool) -> None:
    settings = EdgeSettings(**options)
    if allowed:
        check_exposure(settings)
    else:
        with pytest.raises(SystemExit):
            check_exposure(settings)


def test_the_launcher_binds_only_the_edge_where_asked() -> None:
    children = {child.name: child.argv for child in commands(LauncherSettings(host="0.0.0.0"))}
    assert "--host=0.0.0.0" in children["edge"]
    for name in ("vad", "llm", "tts"):
        assert "--host=127.0.0.1" in children[name], children[name]
    assert "--vad-address=127.0.0.1:50051" in children["edge"]
    wider = {c.name: c.argv for c in commands(LauncherSettings(host="0.0.0.0", services_host="10.0.0.7"))}
    assert "--host=10.0.0.7" in wider["llm"] and "--llm-address=10.0.0.7:50052" in wider["edge"]
