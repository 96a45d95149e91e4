"""``python -m services``: run the whole stack on this machine (``make run``).

Each service is its own process, as in production, run by ``services.supervisor``: their
output is interleaved with a prefix naming each, Ctrl-C or SIGTERM stops them all, and one that
dies is restarted with backoff while the others go on. A fifth process, ``services.ready``,
waits until every service is healthy and prints the call page's address.

``--host`` is the edge's address; the model services and their metrics stay on loopback unless
``--services-host`` says otherwise (they have no authentication of their own).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.common.settings import parse_settings
from services.supervisor import Child, run

REPO_ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class ServiceEntry:
    name: str
    module: str
    port: int
    metrics_port: int | None  # None: metrics on the service's own HTTP port


# The stack; the edge comes last and finds the others at their ports.
STACK = (
    ServiceEntry("vad", "services.vad", 50051, 9051),
    ServiceEntry("llm", "services.llm", 50052, 9052),
    ServiceEntry("tts", "services.tts", 50053, 9053),
    ServiceEntry("edge", "services.edge", 8006, None),
)


class LauncherSettings(BaseSettings):
    """Run Parley's services together on this machine.

    Options are also read from the environment as PARLEY_<OPTION>. Each service takes its own
    settings from its environment variables too (PARLEY_LLM_BACKEND=vllm, ...).
    """

    model_config = SettingsConfigDict(
        env_prefix="PARLEY_", cli_prog_name="python -m services", cli_kebab_case=True, extra="ignore"
    )

    host: str = Field(
        "127.0.0.1",
        description="Address the edge binds to (the call page and the API). Off loopback it serves HTTPS and "
        "needs PARLEY_EDGE_API_TOKEN (or PARLEY_EDGE_INSECURE_NO_AUTH=true).",
    )
    services_host: str = Field(
        "127.0.0.1",
        description="Address the vad, llm and tts services and every metrics port bind to. They have no "
        "authentication: keep them on loopback or a private network.",
    )
    start_timeout: float = Field(180.0, gt=0, description="Seconds the stack may take to become healthy.")
    port_offset: int = Field(
        0, ge=0, le=10_000, description="Added to every default port, to run a second stack beside the first."
    )


def reachable(host: str) -> str:
    """The address to reach a service bound to ``host`` from this machine."""
    return "127.0.0.1" if host in ("0.0.0.0", "::") else host


def commands(settings: LauncherSettings) -> list[Child]:
    """The stack's processes, the edge last; the readiness check runs once."""
    port = {entry.name: entry.port + settings.port_offset for entry in STACK}
    services = reachable(settings.services_host)
    children = []
    for entry in STACK:
        host = settings.host if entry.name == "edge" else settings.services_host
        args = [f"--host={host}", f"--port={port[entry.name]}"]
        if entry.metrics_port is not None:
            args.append(f"--metrics-port={entry.metrics_port + settings.port_offset}")
        if entry.name == "edge":
            args += [f"--{name}-address={services}:{port[name]}" for name in ("vad", "llm", "tts")]
        children.append(Child(entry.name, [sys.executable, "-m", entry.module, *args]))
    ready = [
        sys.executable,
        "-m",
        "services.ready",
        f"--host={settings.host}",
        f"--services-host={settings.services_host}",
        f"--port-offset={settings.port_offset}",
        f"--timeout={settings.start_timeout}",
    ]
    children.append(Child("ready", ready, restart=False))
    return children


def main() -> None:
    settings = parse_settings(LauncherSettings)
    raise SystemExit(run(commands(settings), cwd=str(REPO_ROOT)))


if __name__ == "__main__":
    main()
