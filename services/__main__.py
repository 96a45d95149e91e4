"""``python -m services``: run the whole stack on this machine (``make run``).

Each service is its own process, as in production, run by honcho (the Procfile runner): their
output is interleaved with a prefix naming each, Ctrl-C or SIGTERM stops them all, and if one
dies the others are stopped too. A sixth process, ``services.ready``, waits until every service
is healthy and prints the call page's address.
"""

from __future__ import annotations

import os
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

from honcho.manager import Manager
from honcho.printer import Printer
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.common.settings import parse_settings

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

    host: str = Field("127.0.0.1", description="Address every service binds to.")
    start_timeout: float = Field(180.0, gt=0, description="Seconds the stack may take to become healthy.")
    port_offset: int = Field(
        0, ge=0, le=10_000, description="Added to every default port, to run a second stack beside the first."
    )


def commands(settings: LauncherSettings) -> dict[str, str]:
    """Process name to shell command, for honcho."""
    python = shlex.quote(sys.executable)
    port = {entry.name: entry.port + settings.port_offset for entry in STACK}
    out: dict[str, str] = {}
    for entry in STACK:
        args = [f"--host={settings.host}", f"--port={port[entry.name]}"]
        if entry.metrics_port is not None:
            args.append(f"--metrics-port={entry.metrics_port + settings.port_offset}")
        if entry.name == "edge":
            local = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host
            args += [f"--{name}-address={local}:{port[name]}" for name in ("vad", "llm", "tts")]
        out[entry.name] = f"{python} -m {entry.module} " + " ".join(shlex.quote(a) for a in args)
    out["ready"] = (
        f"{python} -m services.ready --host={shlex.quote(settings.host)} "
        f"--port-offset={settings.port_offset} --timeout={settings.start_timeout}"
    )
    return out


def main() -> None:
    settings = parse_settings(LauncherSettings)
    manager = Manager(Printer(sys.stdout, colour=sys.stdout.isatty(), prefix=True))
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    for name, command in commands(settings).items():
        manager.add_process(name, command, quiet=False, env=env, cwd=str(REPO_ROOT))
    manager.loop()
    # Stopped by Ctrl-C or SIGTERM (honcho's 130/143) is a normal end.
    raise SystemExit(0 if manager.returncode in (130, 143) else manager.returncode)


if __name__ == "__main__":
    main()
