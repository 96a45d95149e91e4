"""``python -m services`` (what ``make run`` starts): the whole stack comes up healthy, the call
page's address is printed, a service killed is restarted, and SIGTERM stops everything."""

import asyncio
import os
import random
import re
import signal
import sys

import aiohttp
import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.__main__ import STACK
from tests.support.processes import REPO_ROOT

STARTED = re.compile(r"(\w+)\s+\| started, pid (\d+)")


async def _line_matching(process: asyncio.subprocess.Process, pattern: str, timeout: float = 120) -> str:  # noqa: ASYNC109
    assert process.stdout is not None
    async with asyncio.timeout(timeout):
        while line := (await process.stdout.readline()).decode():
            if re.search(pattern, line):
                return line
    raise AssertionError(f"the launcher ended without saying {pattern!r}")


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
        # A service that dies is restarted (and the launcher says so); the others stay up.
        pids = {m.group(1): int(m.group(2)) for line in banner if (m := STARTED.match(line))}
        os.kill(pids["vad"], signal.SIGKILL)
        said = await _line_matching(process, r"vad\s+\| exited with code -9; restarting it in 1 s")
        assert said
        assert await _line_matching(process, r"vad\s+\| started, pid \d+")
        vad = f"127.0.0.1:{STACK[0].port + offset}"
        async with grpc.aio.insecure_channel(vad) as channel:
            reply = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=60, wait_for_ready=True
            )
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        os.kill(pids["edge"], 0)  # the edge never stopped
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), timeout=60) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
