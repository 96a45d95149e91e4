"""``python -m services``: run every Parley service that exists, for local use (``make run``).

Each service is its own process, as in production; this launcher starts them on their default
ports, waits until each answers its gRPC health check, says where they listen, and stops them
all on Ctrl-C or SIGTERM (or when one of them dies).
"""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.common.settings import parse_settings


@dataclass(frozen=True)
class ServiceEntry:
    name: str
    module: str
    grpc_port: int
    metrics_port: int


# The stack, in start order. Later services (llm, tts, edge) are added here as they land.
STACK = (
    ServiceEntry("vad", "services.vad", 50051, 9051),
    ServiceEntry("llm", "services.llm", 50052, 9052),
    ServiceEntry("tts", "services.tts", 50053, 9053),
)


class LauncherSettings(BaseSettings):
    """Run Parley's services together on this machine.

    Options are also read from the environment as PARLEY_<OPTION>.
    """

    model_config = SettingsConfigDict(
        env_prefix="PARLEY_", cli_prog_name="python -m services", cli_kebab_case=True, extra="forbid"
    )

    host: str = Field("127.0.0.1", description="Address every service binds to.")
    start_timeout: float = Field(120.0, gt=0, description="Seconds a service may take to become healthy.")
    port_offset: int = Field(
        0, ge=0, le=10_000, description="Added to every default port, to run a second stack beside the first."
    )


async def wait_healthy(address: str, deadline: float, process: asyncio.subprocess.Process) -> None:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while True:
            if process.returncode is not None:
                raise RuntimeError(f"exited with status {process.returncode} while starting")
            try:
                reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=1, wait_for_ready=True)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.aio.AioRpcError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError("did not become healthy in time")
            await asyncio.sleep(0.2)  # polling a health check, not papering over a race


async def launch(settings: LauncherSettings) -> int:
    processes: dict[str, asyncio.subprocess.Process] = {}
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        for entry in STACK:
            processes[entry.name] = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                entry.module,
                f"--host={settings.host}",
                f"--port={entry.grpc_port + settings.port_offset}",
                f"--metrics-port={entry.metrics_port + settings.port_offset}",
                stdin=asyncio.subprocess.DEVNULL,
            )
            address = f"{settings.host}:{entry.grpc_port + settings.port_offset}"
            try:
                await wait_healthy(address, time.monotonic() + settings.start_timeout, processes[entry.name])
            except (RuntimeError, TimeoutError) as exc:
                print(f"parley: {entry.name} failed to start: {exc}", file=sys.stderr)
                return 1
        print("\nParley is running:", flush=True)
        for entry in STACK:
            print(
                f"  {entry.name:<5} gRPC {settings.host}:{entry.grpc_port + settings.port_offset}   "
                f"metrics http://{settings.host}:{entry.metrics_port + settings.port_offset}/metrics"
            )
        print("  (the call page arrives with the edge service; see README 'Status')\nCtrl-C stops everything.\n")
        exits = {asyncio.ensure_future(process.wait()): name for name, process in processes.items()}
        stopping = asyncio.ensure_future(stop.wait())
        done, _ = await asyncio.wait({stopping, *exits}, return_when=asyncio.FIRST_COMPLETED)
        for finished in done - {stopping}:
            print(f"parley: {exits[finished]} exited with status {finished.result()}; stopping", file=sys.stderr)
            return 1
        return 0
    finally:
        for process in reversed(processes.values()):
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
        for process in processes.values():
            try:
                await asyncio.wait_for(process.wait(), timeout=30)
            except TimeoutError:
                process.kill()


def main() -> None:
    settings = parse_settings(LauncherSettings)
    raise SystemExit(asyncio.run(launch(settings)))


if __name__ == "__main__":
    main()
