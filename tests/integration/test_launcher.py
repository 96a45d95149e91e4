"""``python -m services`` (what ``make run`` starts): the whole stack comes up healthy, the call
page's address is printed, and SIGTERM stops everything."""

import asyncio
import random
import signal
import sys

import aiohttp
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
        banner: list[str] = []
        while not banner or not banner[-1].endswith("Ctrl-C stops everything."):
            line = await asyncio.wait_for(process.stdout.readline(), timeout=180)
            assert line, f"launcher exited early: {banner[-20:]}"
            banner.append(line.decode().strip())
        page = f"http://127.0.0.1:{8006 + offset}/"
        assert any(f"Call page:  {page}" in line for line in banner), banner[-12:]
        for entry in STACK:
            address = f"127.0.0.1:{entry.port + offset}"
            assert any(address in line for line in banner), banner[-12:]
            if entry.name == "edge":
                continue
            async with grpc.aio.insecure_channel(address) as channel:
                reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
                assert reply.status == health_pb2.HealthCheckResponse.SERVING
        async with aiohttp.ClientSession() as http:
            async with http.get(page) as response:
                assert response.status == 200
                assert "<html" in (await response.text()).lower()
            async with http.get(page + "readyz") as response:
                assert (await response.json())["services"] == {"vad": "serving", "llm": "serving", "tts": "serving"}
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), timeout=60) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
