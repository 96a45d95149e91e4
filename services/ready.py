"""``python -m services.ready``: wait until the local stack is healthy, print where it is, stay up.

Run by ``python -m services`` beside the services. Exits 1 if the stack is not healthy in time
(which makes the supervisor stop the rest); otherwise waits for SIGTERM and exits 0.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import time

import aiohttp
import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.__main__ import STACK
from services.common.settings import parse_settings
from services.edge.tls import LOOPBACK_HOSTS


class ReadySettings(BaseSettings):
    """Wait for the local Parley stack to become healthy."""

    model_config = SettingsConfigDict(cli_prog_name="python -m services.ready", cli_kebab_case=True, extra="forbid")

    host: str = "127.0.0.1"  # the edge's
    services_host: str = "127.0.0.1"  # the model services'
    port_offset: int = Field(0, ge=0)
    timeout: float = Field(180.0, gt=0)


async def _grpc_serving(address: str) -> bool:
    async with grpc.aio.insecure_channel(address) as channel:
        try:
            reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=1)
        except grpc.aio.AioRpcError:
            return False
        return reply.status == health_pb2.HealthCheckResponse.SERVING


async def _edge_ready(url: str) -> bool:
    timeout = aiohttp.ClientTimeout(total=3)
    try:
        # The edge's certificate may be self-signed; this only asks whether it is up.
        async with aiohttp.ClientSession() as http, http.get(url + "readyz", timeout=timeout, ssl=False) as response:
            return response.status == 200
    except aiohttp.ClientError:
        return False


def _reachable(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "::") else host


def _banner(settings: ReadySettings, local: str, edge_url: str) -> str:
    public = settings.host if settings.host not in ("0.0.0.0", "::") else "<this host's address>"
    page = edge_url if public == local else edge_url.replace(local, public)
    lines = ["", "Parley is running.", f"  Call page:  {page}", ""]
    services = _reachable(settings.services_host)
    for entry in STACK:
        port = entry.port + settings.port_offset
        if entry.metrics_port is None:
            lines.append(f"  {entry.name:<5} HTTP {local}:{port:<6} metrics {edge_url}metrics")
        else:
            metrics = f"http://{services}:{entry.metrics_port + settings.port_offset}/metrics"
            lines.append(f"  {entry.name:<5} gRPC {services}:{port:<6} metrics {metrics}")
    return "\n".join([*lines, "", "Ctrl-C stops everything."])


async def wait(settings: ReadySettings) -> int:
    local = _reachable(settings.host)
    services = _reachable(settings.services_host)
    scheme = "http" if settings.host in LOOPBACK_HOSTS else "https"  # the edge serves HTTPS beyond loopback
    edge = next(entry for entry in STACK if entry.name == "edge")
    edge_url = f"{scheme}://{local}:{edge.port + settings.port_offset}/"
    deadline = time.monotonic() + settings.timeout
    pending = [entry for entry in STACK]
    while pending:
        checks = [
            _edge_ready(edge_url)
            if entry.name == "edge"
            else _grpc_serving(f"{services}:{entry.port + settings.port_offset}")
            for entry in pending
        ]
        healthy = await asyncio.gather(*checks)
        pending = [entry for entry, ok in zip(pending, healthy, strict=True) if not ok]
        if pending:
            if time.monotonic() > deadline:
                names = ", ".join(entry.name for entry in pending)
                print(f"not healthy after {settings.timeout:.0f} s: {names}", file=sys.stderr)
                return 1
            await asyncio.sleep(0.5)  # polling health checks
    print(_banner(settings, local, edge_url), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    return 0


def main() -> None:
    raise SystemExit(asyncio.run(wait(parse_settings(ReadySettings))))


if __name__ == "__main__":
    main()
