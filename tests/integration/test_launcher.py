"""``python -m services`` (what ``make run`` starts): every service comes up healthy and stops on SIGTERM."""

import asyncio
import random
import signal
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.__main__ import STACK
from tests.support.processes import REPO_ROOT


async def test_launcher_starts_the_stack_and_stops_it() -> None:
    offset = random.randrange(1000, 9000)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services",
        f"--port-offset={offset}",
        cwd=REPO_ROOT,
        stdout=asyncio.subprocess.PIPE,
        stdin=asyncio.subprocess.DEVNULL,
    )
    try:
        assert process.stdout is not None
        banner = []
        while not banner or banner[-1] != "Ctrl-C stops everything.":
            line = await asyncio.wait_for(process.stdout.readline(), timeout=120)
            assert line, f"launcher exited early: {banner}"
            banner.append(line.decode().strip())
        for entry in STACK:
            address = f"127.0.0.1:{entry.grpc_port + offset}"
            assert any(address in line for line in banner), banner
            async with grpc.aio.insecure_channel(address) as channel:
                reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
                assert reply.status == health_pb2.HealthCheckResponse.SERVING
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), timeout=60) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
