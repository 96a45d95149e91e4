"""The edge's memory after clients pile up large input items and leave.

    .venv/bin/python -m bench.edge_memory [--sessions 4] [--items 150]

Starts the stack (the scripted LLM: the language model's words play no part), then --sessions
WebSocket clients at once each send --items `conversation.item.create` with a 45 s `input_audio`
(2.9 MB of base64) and no `response.create`, and leave. Prints the edge's RSS at the start,
once they have gone, and 5 s later, and what the clients were told (the pending-input cap
refuses all but what one response can take).
"""

from __future__ import annotations

import argparse
import asyncio
import base64

import numpy as np

from tests.support.processes import ServiceProcess, running_stack
from tests.support.realtime_ws import realtime_socket


async def piler(url: str, items: int) -> tuple[int, int]:
    """(errors, items kept) for one client."""
    samples = np.random.default_rng(0).integers(-3000, 3000, 24000 * 45, dtype="<i2")
    audio = base64.b64encode(samples.tobytes()).decode()
    item = {"type": "message", "role": "user", "content": [{"type": "input_audio", "audio": audio}]}
    async with realtime_socket(url) as socket:
        await socket.next_event("session.created")
        for _ in range(items):
            await socket.send({"type": "conversation.item.create", "item": item})
        await socket.send({"type": "session.update", "session": {}})
        await socket.next_event("session.updated", timeout=300)
        return len(socket.of_type("error")), len(socket.of_type("conversation.item.added"))


async def run(edge: ServiceProcess, sessions: int, items: int) -> None:
    print(f"edge RSS at start: {edge.rss_mb():.0f} MB")
    results = await asyncio.gather(*(piler(edge.url, items) for _ in range(sessions)))
    print(f"{sessions} clients x {items} items of 2.9 MB: errors / items kept per client {results}")
    print(f"edge RSS once they have gone: {edge.rss_mb():.0f} MB")
    await asyncio.sleep(5)  # what is still held 5 s later (the trim after a session runs at 2 s)
    print(f"edge RSS 5 s later: {edge.rss_mb():.0f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=4)
    parser.add_argument("--items", type=int, default=150)
    args = parser.parse_args()
    with running_stack(scripted_llm=True) as services:
        asyncio.run(run(services["edge"], args.sessions, args.items))


if __name__ == "__main__":
    main()
