"""Soak: mixed sessions for a long stretch on the default stack, with abusers and service kills.

    .venv/bin/python -m bench.soak [--minutes 20]

Loopback only, bounded in time (every loop stops at the deadline) and in count. Three phases on
one stack (the bundled models, the edge's defaults):
1. baseline (a fifth of the time): the well-behaved sessions alone;
2. abuse (three fifths): the same, beside a slow reader (asks for replies, never reads), a client
   that disconnects mid-answer, a client piling up 2.9 MB input items, and a model service
   (tts, then vad, in turn) killed with SIGKILL and restarted every --kill-every seconds;
3. after (a fifth): the abusers gone, the well-behaved sessions again.
Well-behaved sessions (WebSocket): a text turn, a spoken question (real-time audio), and a
full-duplex barge-in (a question spoken over the reply); a turn that fails (a killed service)
is asked again, as a person would, up to three times.

Prints answered/asked, errors by code (well-behaved and abusers apart), each process's RSS at the
start, before and after the abuse and at the end, and the median and p95 turn time of the well-behaved
sessions per phase, with the abuse phase's p95 as a ratio of the baseline's.
Targets (issue 17): every well-behaved turn answered, RSS growth < 10% after the abusers leave,
p95 with abusers within 1.5x of the baseline. The growth the abusers leave is measured from the
end of the baseline: the baseline's own growth (the first sessions' lazy imports and schema
builds, numpy's and the allocator's first pages) is there without any abuser; its figure is
printed beside it.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import contextlib
import os
import signal
import statistics
import time
from collections.abc import Awaitable, Callable

import numpy as np

from tests.support.processes import ServiceProcess, running_stack, start_service
from tests.support.realtime_ws import RealtimeSocket, UnreadSocket, realtime_socket
from tests.support.speech import speak

RATE = 24000
QUESTION = "What is the capital of France?"


class Tally:
    def __init__(self) -> None:
        self.asked = self.answered = 0
        self.errors: collections.Counter[str] = collections.Counter()
        self.abuser_errors: collections.Counter[str] = collections.Counter()
        self.turn_seconds: dict[str, list[float]] = collections.defaultdict(list)
        self.phase = "baseline"

    def note_errors(self, socket: RealtimeSocket, start: int, abuser: bool = False) -> None:
        for event in socket.events[start:]:
            if event["type"] == "error":
                (self.abuser_errors if abuser else self.errors)[event["error"]["code"]] += 1


def _item(text: str) -> dict:
    return {
        "type": "conversation.item.create",
        "item": {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]},
    }


async def _turn(tally: Tally, socket: RealtimeSocket, ask: Callable[[], Awaitable[None]], responses: int = 1) -> float:
    """One well-behaved turn (its last of ``responses``), asked again (up to three times) if it
    fails; returns the seconds of audio its reply had (0 if none)."""
    tally.asked += 1
    for _ in range(3):
        start, asked = len(socket.events), time.monotonic()
        try:
            await ask()
            for _ in range(responses):
                done = await socket.next_event("response.done", timeout=45)  # a person asks again sooner
        except TimeoutError:
            done = {"response": {"status": "timed out"}}
            tally.errors["client_timeout"] += 1
        tally.note_errors(socket, start)
        if done["response"]["status"] in ("completed", "incomplete"):
            tally.answered += 1
            tally.turn_seconds[tally.phase].append(time.monotonic() - asked)
            deltas = [e for e in socket.events[start:] if e["type"] == "response.output_audio.delta"]
            return sum(len(base64.b64decode(e["delta"])) for e in deltas) / 2 / RATE
        await asyncio.sleep(2)  # a person waits a moment before asking again
    return 0.0


async def text_client(url: str, tally: Tally, deadline: float) -> None:
    async with realtime_socket(url) as socket:
        await socket.next_event("session.created")
        await socket.send({"type": "session.update", "session": {"type": "realtime", "parley": {"mode": "chat"}}})
        while time.monotonic() < deadline:

            async def ask() -> None:
                await socket.send(_item(QUESTION))
                await socket.send({"type": "response.create"})

            await _turn(tally, socket, ask)
            await asyncio.sleep(1)


async def voice_client(url: str, tally: Tally, deadline: float, speech: np.ndarray, barge_in: bool) -> None:
    mode = "full_duplex" if barge_in else "half_duplex"
    async with realtime_socket(url) as socket:
        await socket.next_event("session.created")
        await socket.send({"type": "session.update", "session": {"type": "realtime", "parley": {"mode": mode}}})
        while time.monotonic() < deadline:

            async def ask() -> None:
                audio = np.concatenate((np.zeros(RATE // 2, np.float32), speech, np.zeros(RATE, np.float32)))
                await socket.append_audio(audio, real_time=True)
                if barge_in:  # speak over the reply as soon as it plays: two responses, the second judged
                    await socket.next_event("response.output_audio.delta", timeout=120)
                    await socket.append_audio(audio, real_time=True)

            played = await _turn(tally, socket, ask, responses=2 if barge_in else 1)
            # The microphone goes on (silence) while the reply plays out, as a client's would.
            await socket.append_audio(np.zeros(int(RATE * (played + 1.0)), np.float32), real_time=True)


async def slow_reader(url: str, deadline: float) -> None:
    """A WebSocket client that asks for long replies and never reads what comes back."""
    with contextlib.suppress(ConnectionError, OSError):
        client = await UnreadSocket.connect(url)
        while time.monotonic() < deadline:
            await client.send(_item("Tell me about the history of Paris."))
            await client.send({"type": "response.create"})
            await asyncio.sleep(5)
        client.close()


async def leaver(url: str, tally: Tally, deadline: float) -> None:
    """Asks for a long reply and disconnects once it starts, again and again."""
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            async with realtime_socket(url) as socket:
                await socket.next_event("session.created")
                await socket.send(_item("Tell me about the history of Paris."))
                await socket.send({"type": "response.create"})
                await socket.next_event("response.output_audio.delta", timeout=60)
                tally.note_errors(socket, 0, abuser=True)
        await asyncio.sleep(2)


async def piler(url: str, tally: Tally, deadline: float) -> None:
    """Piles up 2.9 MB input_audio items and never asks for a response."""
    audio = base64.b64encode(np.zeros(RATE * 45, "<i2").tobytes()).decode()
    item = {
        "type": "conversation.item.create",
        "item": {"type": "message", "role": "user", "content": [{"type": "input_audio", "audio": audio}]},
    }
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            async with realtime_socket(url) as socket:
                await socket.next_event("session.created")
                for _ in range(40):
                    await socket.send(item)
                await socket.send({"type": "session.update", "session": {}})
                await socket.next_event("session.updated", timeout=120)
                tally.note_errors(socket, 0, abuser=True)
        await asyncio.sleep(1)


async def killer(services: dict[str, ServiceProcess], every: float, deadline: float) -> None:
    """SIGKILL tts, then vad, in turn, each restarted at once on its own port."""
    names = ["tts", "vad"]
    turn = 0
    while time.monotonic() + every < deadline:
        await asyncio.sleep(every)
        name = names[turn % len(names)]
        turn += 1
        old = services[name]
        port = int(old.grpc_address.rsplit(":", 1)[1])
        os.kill(old.process.pid, signal.SIGKILL)
        await asyncio.to_thread(old.process.wait)
        services[name] = await asyncio.to_thread(start_service, f"services.{name}", port=port)
        print(f"  killed and restarted {name}", flush=True)


async def soak(services: dict[str, ServiceProcess], minutes: float, kill_every: float) -> None:
    edge = services["edge"]
    speech = speak(QUESTION, RATE)
    tally = Tally()
    total = minutes * 60
    rss = {"start": {name: s.rss_mb() for name, s in services.items()}}

    async def well_behaved(seconds: float) -> None:
        deadline = time.monotonic() + seconds
        outcomes = await asyncio.gather(
            text_client(edge.url, tally, deadline),
            voice_client(edge.url, tally, deadline, speech, barge_in=False),
            voice_client(edge.url, tally, deadline, speech, barge_in=True),
            return_exceptions=True,
        )
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                tally.errors[f"client ended: {type(outcome).__name__}"] += 1
                print(f"  a well-behaved client ended: {outcome!r}", flush=True)

    await well_behaved(total / 5)
    rss["before abuse"] = {name: s.rss_mb() for name, s in services.items()}
    tally.phase = "abuse"
    deadline = time.monotonic() + total * 3 / 5
    await asyncio.gather(
        well_behaved(total * 3 / 5),
        *(slow_reader(edge.url, deadline) for _ in range(4)),
        leaver(edge.url, tally, deadline),
        piler(edge.url, tally, deadline),
        killer(services, kill_every, deadline),
    )
    rss["after abuse"] = {name: s.rss_mb() for name, s in services.items()}
    tally.phase = "after"
    await well_behaved(total / 5)
    rss["end"] = {name: s.rss_mb() for name, s in services.items()}

    print(f"\nwell-behaved turns answered/asked: {tally.answered}/{tally.asked}")
    print(f"errors seen by well-behaved sessions: {dict(tally.errors) or 'none'}")
    print(f"errors seen by the abusers: {dict(tally.abuser_errors) or 'none'}")
    print("\nRSS (MB)        " + "".join(f"{name:>10}" for name in services))
    for moment, values in rss.items():
        print(f"  {moment:<14}" + "".join(f"{values[name]:10.0f}" for name in services))
    left_by_abuse = rss["end"]["edge"] / rss["before abuse"]["edge"] - 1
    warm_up = rss["before abuse"]["edge"] / rss["start"]["edge"] - 1
    print(f"  edge growth left by the abusers (before abuse to end): {left_by_abuse:+.0%}")
    print(f"  edge growth in the baseline, no abuser yet (start to before abuse): {warm_up:+.0%}")
    print("  (vad/tts restarted: their figures are new processes)")
    print("\nwell-behaved turn time (s, from the question's first audio or text sent to response.done)")
    for phase, seconds in tally.turn_seconds.items():
        median, p95 = statistics.median(seconds), np.percentile(seconds, 95)
        print(f"  {phase:<9} median {median:5.2f}  p95 {p95:5.2f}  n={len(seconds)}")
    base, abuse = tally.turn_seconds.get("baseline"), tally.turn_seconds.get("abuse")
    if base and abuse:
        print(f"  p95 with abusers / baseline: {np.percentile(abuse, 95) / np.percentile(base, 95):.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--kill-every", type=float, default=180.0, help="seconds between service kills")
    args = parser.parse_args()
    with running_stack() as services:  # the kills put each restarted service in its place
        print(f"soak: {args.minutes:g} minutes on loopback, a service killed every {args.kill_every:g} s", flush=True)
        asyncio.run(soak(services, args.minutes, args.kill_every))


if __name__ == "__main__":
    main()
