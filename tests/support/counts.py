"""How many sessions the edge and the LLM service hold, and waiting for a count to be reached.

Sessions are released just after their connection closes; tests wait for the count rather than
for a fixed time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import aiohttp
import grpc
from parley.v1 import conversation_pb2, conversation_pb2_grpc

from tests.support.processes import ServiceProcess
from tests.support.tooling import metric_value


async def edge_sessions(edge: ServiceProcess) -> int:
    async with aiohttp.ClientSession() as http, http.get(f"{edge.url}healthz") as response:
        return int((await response.json())["sessions"])


async def llm_sessions(llm: ServiceProcess) -> int:
    async with grpc.aio.insecure_channel(llm.grpc_address) as channel:
        load = await conversation_pb2_grpc.ConversationServiceStub(channel).GetLoad(conversation_pb2.GetLoadRequest())
        return int(load.active_sessions)


async def wait_for_edge_sessions(edge: ServiceProcess, count: int, seconds: float = 15) -> None:
    await _wait_for(lambda: edge_sessions(edge), count, seconds)


async def wait_for_llm_sessions(llm: ServiceProcess, count: int, seconds: float = 15) -> None:
    await _wait_for(lambda: llm_sessions(llm), count, seconds)


async def edge_metric(edge: ServiceProcess, name: str) -> float:
    async with aiohttp.ClientSession() as http, http.get(f"{edge.url}metrics") as response:
        return metric_value(await response.text(), name)


async def wait_for_edge_metric(edge: ServiceProcess, name: str, value: float, seconds: float = 15) -> None:
    await _wait_for(lambda: edge_metric(edge, name), value, seconds)


async def _wait_for(read: Callable[[], Awaitable[float]], count: float, seconds: float) -> None:
    async with asyncio.timeout(seconds):
        while True:
            if await read() == count:
                return
            await asyncio.sleep(0.05)  # polling the service's own count
