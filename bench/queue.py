"""The admission queue: 3x capacity clients arriving at once; their waits and the ETA's error.

    make bench-queue        (or: .venv/bin/python -m bench.queue --help)

Starts a stack whose edge places at most --capacity sessions on its one LLM replica
(--llm-sessions-per-replica), then sends waves of 3x capacity WebSocket clients at once. Each
client, once admitted, asks one question in text, keeps its session for a random time
(--hold-min to --hold-max seconds) and leaves. For every client that waited: the wait, and the
first ETA it was told minus the wait it had (the ETA's error). The first wave finds no finished
sessions, so its ETAs use the prior length (--queue-eta-prior-seconds); later waves use the
moving average of the sessions that ended. Median and p95 per wave.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time

import numpy as np

from tests.support.processes import running_stack
from tests.support.realtime_ws import realtime_socket


async def client(url: str, hold: float) -> tuple[float, float | None]:
    """(seconds waited, first ETA told or None when admitted at once)."""
    asked = time.monotonic()
    async with realtime_socket(url) as socket:
        await socket.next_event("session.created")
        first_eta = None
        try:  # a session that must wait is told its place right after session.created
            event = await socket.next_event("parley.queue.updated", timeout=2)
        except TimeoutError:
            event = None  # admitted at once
        if event is not None:
            first_eta = event["eta_seconds"]
            done = await socket.next_event("parley.queue.admitted", "error", timeout=900)
            if done["type"] == "error":
                raise RuntimeError(f"refused while waiting: {done['error']}")
        waited = time.monotonic() - asked if first_eta is not None else 0.0
        await socket.send({"type": "session.update", "session": {"type": "realtime", "output_modalities": ["text"]}})
        await socket.send(
            {
                "type": "conversation.item.create",
                "item": {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Say hi."}]},
            }
        )
        await socket.send({"type": "response.create"})
        await socket.next_event("response.done", timeout=120)
        await asyncio.sleep(hold)  # the caller keeps the session this long
    return waited, first_eta


async def wave(
    url: str, clients: int, hold: tuple[float, float], rng: random.Random
) -> list[tuple[float, float | None]]:
    holds = [rng.uniform(*hold) for _ in range(clients)]
    return await asyncio.gather(*(client(url, h) for h in holds))


def report(number: int, results: list[tuple[float, float | None]]) -> None:
    queued = [(w, eta) for w, eta in results if eta is not None]
    waits = [w for w, _ in queued]
    errors = [eta - w for w, eta in queued]
    print(f"\nwave {number}: {len(results)} clients, {len(queued)} waited in line")
    print(f"  wait (s)                    {_figures_s(waits)}")
    print(f"  ETA error (told - waited)   {_figures_s(errors)}")
    relative = [abs(error) / waited for error, waited in zip(errors, waits, strict=True) if waited > 0]
    if relative:
        print(f"  |ETA error| / wait          median {statistics.median(relative):.2f}")


def _figures_s(values: list[float]) -> str:
    if not values:
        return "n/a"
    return f"median {statistics.median(values):7.1f}   p95 {np.percentile(values, 95):7.1f}   (n={len(values)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--capacity", type=int, default=2, help="sessions the LLM replica takes")
    parser.add_argument("--waves", type=int, default=3)
    parser.add_argument("--hold-min", type=float, default=4.0)
    parser.add_argument("--hold-max", type=float, default=10.0)
    parser.add_argument("--queue-eta-prior-seconds", type=float, default=180)
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()
    edge_args = [
        f"--llm-sessions-per-replica={args.capacity}",
        f"--queue-eta-prior-seconds={args.queue_eta_prior_seconds}",
        "--max-sessions=64",
    ]
    with running_stack(edge_args) as services:
        rng = random.Random(args.seed)
        held = f"{args.hold_min}-{args.hold_max} s"
        print(f"capacity {args.capacity}, {3 * args.capacity} clients a wave, sessions held {held}")
        for number in range(1, args.waves + 1):
            results = asyncio.run(wave(services["edge"].url, 3 * args.capacity, (args.hold_min, args.hold_max), rng))
            report(number, results)


if __name__ == "__main__":
    main()
