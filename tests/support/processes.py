"""Start a Parley service as a real process on loopback and learn its ports from its log."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
# Sessions the test suite's shared LLM service holds (tests leave their sessions to expire).
SHARED_LLM_MAX_SESSIONS = 64


@dataclass
class ServiceProcess:
    """A running service; ``logs`` collects its JSON log records as they arrive."""

    name: str
    process: subprocess.Popen[str]
    grpc_address: str = ""
    metrics_url: str = ""
    url: str = ""  # the edge's HTTP base URL
    logs: list[dict[str, object]] = field(default_factory=list)
    _listening: threading.Event = field(default_factory=threading.Event)

    def _read_logs(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                record = {"level": "raw", "msg": line.rstrip()}
            self.logs.append(record)
            if str(record.get("msg", "")).endswith(" listening"):
                self.grpc_address = str(record.get("grpc", ""))
                self.metrics_url = str(record.get("metrics", ""))
                self.url = str(record.get("url", ""))
                self._listening.set()
        self._listening.set()  # the process ended; wake a waiter

    def wait_listening(self, timeout: float) -> None:
        if not self._listening.wait(timeout) or not (self.grpc_address or self.url):
            self.stop()
            tail = "\n".join(str(r.get("msg")) for r in self.logs[-20:])
            raise RuntimeError(f"{self.name} did not start listening within {timeout}s; log tail:\n{tail}")

    def terminate(self) -> None:
        """Send SIGTERM (the service starts draining)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def stop(self, timeout: float = 30) -> int:
        self.terminate()
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()

    def rss_mb(self) -> float:
        """The process's resident memory now (Linux), in MB."""
        with open(f"/proc/{self.process.pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return 0.0

    def cpu_seconds(self) -> float:
        """The CPU time the process has used so far (Linux; user and system), in seconds."""
        with open(f"/proc/{self.process.pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def warnings(self) -> list[dict[str, object]]:
        return [r for r in self.logs if r.get("level") in ("warning", "error", "critical")]


def start_service(
    module: str,
    *args: str,
    timeout: float = 60,
    env: dict[str, str] | None = None,
    python: str = sys.executable,
    port: int = 0,
) -> ServiceProcess:
    """Run ``python -m <module>`` on free loopback ports (or ``port``) and wait until it listens."""
    # The edge serves its metrics on its own HTTP port.
    metrics = [] if module == "services.edge" else ["--metrics-port", "0"]
    command = [
        python,
        "-m",
        module,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        *metrics,
        "--log-format",
        "json",
        *args,
    ]
    return start_process(module, command, timeout, env)


def start_process(
    name: str, command: Sequence[str], timeout: float = 60, env: dict[str, str] | None = None
) -> ServiceProcess:
    """Run ``command`` in the repository and wait for its log line that ends in " listening"
    (a JSON record on stderr naming its ``grpc`` address or ``url``)."""
    process = subprocess.Popen(
        list(command),
        cwd=REPO_ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )
    service = ServiceProcess(name, process)
    threading.Thread(target=service._read_logs, name=f"{name}-logs", daemon=True).start()
    started = time.monotonic()
    try:
        service.wait_listening(timeout)
    except BaseException:  # e.g. pytest-timeout's stop mid-wait: no process is left running
        service.stop()
        raise
    service.startup_seconds = time.monotonic() - started  # type: ignore[attr-defined]
    return service


def start_scripted_llm(*args: str) -> ServiceProcess:
    """The LLM service with scripted replies (``tests.support.scripted_llm``): real recognition,
    sessions and gRPC, words that do not depend on the CPU."""
    return start_service("tests.support.scripted_llm", *args, timeout=180)


def start_edge(vad: ServiceProcess, llm: ServiceProcess, tts: ServiceProcess, *args: str) -> ServiceProcess:
    """The edge on a free loopback port, its ICE host candidates limited to 127.0.0.1."""
    return start_service(
        "services.edge",
        f"--vad-address={vad.grpc_address}",
        f"--llm-address={llm.grpc_address}",
        f"--tts-address={tts.grpc_address}",
        '--ice-host-addresses=["127.0.0.1"]',
        *args,
    )


@contextlib.contextmanager
def running_stack(
    edge_args: Sequence[str] = (),
    llm_args: Sequence[str] = (),
    tts_args: Sequence[str] = (),
    scripted_llm: bool = False,
) -> Iterator[dict[str, ServiceProcess]]:
    """vad, llm (the bundled model, or scripted replies), tts and an edge in front of them, on free
    loopback ports, as ``{"vad", "llm", "tts", "edge"}``. On leaving, whatever the dict then holds
    is stopped, edge first (a caller that restarts a service puts the new process in its place)."""
    services: dict[str, ServiceProcess] = {}
    try:
        services["vad"] = start_service("services.vad")
        if scripted_llm:
            services["llm"] = start_scripted_llm(*llm_args)
        else:
            services["llm"] = start_service("services.llm", *llm_args, timeout=180)
        services["tts"] = start_service("services.tts", *tts_args)
        services["edge"] = start_edge(services["vad"], services["llm"], services["tts"], *edge_args)
        yield services
    finally:
        for service in reversed(list(services.values())):
            with contextlib.suppress(Exception):
                service.stop()
