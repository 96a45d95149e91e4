"""Barge-in: how fast the assistant goes quiet when the user speaks over it, and what echo does.

    make bench-barge-in     (or: .venv/bin/python -m bench.barge_in --help)

A Python WebRTC client (aiortc, loopback, one-frame receive buffer) calls the edge in
full-duplex mode, asks for a long answer (espeak-ng), and once the answer has played for a
while speaks a second question over it. Barge-in latency = the interrupting speech's first voiced
sample sent -> the last non-silent sample of the first answer received (a 20 ms frame with RMS
above 10; a paused or cleared track sends exact zeros), before the second answer starts. Median
and p95 over the rounds where the answer was still playing, and separately over those where it
was audible (RMS > 500) in the 100 ms before the user began.

With --echo it then asks --echo-rounds questions whose answers come back into the microphone at
-12 dB (no echo cancellation), with the echo guard on and off (--echo-correlation 1), and counts
what the echo did: answers cancelled (barge-ins), pauses that resumed (false interruptions),
speech starts taken for echo.

Without --url it starts its own stack (vad, llm, tts, edge) on free ports.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import sys

import aiohttp
import numpy as np

from bench.voice_to_voice import figures
from tests.support.processes import running_stack
from tests.support.speech import speak, voiced_bounds
from tests.support.tooling import metric_value
from tests.support.webrtc_client import RATE, RealtimeCall

INSTRUCTIONS = "Answer in at least five long sentences."
QUESTIONS = [
    "Tell me about the history of Paris.",
    "Describe how bread is made.",
    "Tell me about the planets of the solar system.",
    "Explain how a bicycle works.",
    "Tell me about the ocean.",
    "Describe a day in the life of a farmer.",
]
INTERRUPTIONS = [
    "What is two plus two?",
    "What is the capital of Italy?",
    "What color is the sky?",
    "How many days are in a week?",
]
LOUD = 500  # RMS of an audible frame (int16): the answer is playing
SOUND = 10  # RMS above digital silence (int16): what a paused track sends is exactly zero


def said(text: str) -> np.ndarray:
    return np.concatenate((np.zeros(RATE // 5, np.float32), speak(text, RATE)))


def speech_onset(clip: np.ndarray) -> float:
    """Seconds from a clip's first sample to its first voiced one."""
    return voiced_bounds(clip, RATE)[0] / RATE


def sound_times(call: RealtimeCall, after: float, before: float, level: float = SOUND) -> list[float]:
    """Arrival times of received frames between the two times with an RMS above ``level``."""
    return [
        when
        for when, samples in zip(call.audio_times, call.audio, strict=False)
        if after <= when < before and np.sqrt(np.mean(samples.astype(np.float64) ** 2)) > level
    ]


async def metrics(url: str) -> dict[str, float]:
    async with aiohttp.ClientSession() as http, http.get(url.rstrip("/") + "/metrics") as response:
        text = await response.text()
    names = ("barge_ins_total", "false_interruptions_total", "echo_rejected_total")
    return {name: metric_value(text, f"parley_edge_{name}") for name in names}


async def interruptions(url: str, rounds: int, seed: int) -> tuple[list[float], list[float]]:
    rng = random.Random(seed)
    call = RealtimeCall(url, receive_prefetch=1)
    latencies: list[float] = []
    while_audible: list[float] = []
    await call.connect({"type": "realtime", "parley": {"mode": "full_duplex"}, "instructions": INSTRUCTIONS})
    await call.wait_for("session.created")
    try:
        for index in range(rounds):
            before = len(call.events)
            loud_before = call.loud_seconds()
            call.microphone.play(said(QUESTIONS[index % len(QUESTIONS)]))
            await call.wait_for("output_audio_buffer.started", after=before, timeout=60)
            into = 1.0 + rng.random()  # interrupt 1-2 s into the answer
            try:
                await call.wait_until(lambda: call.loud_seconds() - loud_before >= into, timeout=30)  # noqa: B023
            except TimeoutError:
                print(f"round {index + 1}: the answer ended before {into:.1f} s; skipped", file=sys.stderr)
                continue
            spoken_over = len(call.events)
            clips = len(call.microphone.clip_started)
            interruption = said(INTERRUPTIONS[index % len(INTERRUPTIONS)])
            call.microphone.play(interruption)
            try:
                await call.wait_for("conversation.item.truncated", after=spoken_over, timeout=10)
            except TimeoutError:
                print(f"round {index + 1}: no barge-in (the answer had ended as the user began)", file=sys.stderr)
                with contextlib.suppress(TimeoutError):
                    await call.wait_for("output_audio_buffer.stopped", after=spoken_over, timeout=60)
                continue
            second = await call.wait_for("response.created", after=spoken_over, timeout=60)
            await call.wait_for("output_audio_buffer.stopped", after=call.events.index(second), timeout=60)
            started = call.microphone.clip_started[clips] + speech_onset(interruption)
            answer = call.first_loud_time(after=call.microphone.clip_ended[-1], threshold=LOUD) or float("inf")
            heard = sound_times(call, started, answer - 0.05)
            latency = (heard[-1] - started) * 1000 if heard else 0.0
            speaking = bool(sound_times(call, started - 0.1, started, LOUD))  # audible as the user began
            latencies.append(latency)
            if speaking:
                while_audible.append(latency)
            note = "" if speaking else "  (the answer was between words as the user began)"
            print(f"round {index + 1:2d}: first answer silent {latency:5.0f} ms after the interruption began{note}")
    finally:
        await call.close()
    return latencies, while_audible


async def echo_rounds(url: str, rounds: int) -> dict[str, float]:
    before = await metrics(url)
    cancelled = unfinished = 0
    for index in range(rounds):
        call = RealtimeCall(url, receive_prefetch=1, echo_gain=0.25, echo_delay_ms=60)
        try:
            await call.connect({"type": "realtime", "parley": {"mode": "full_duplex"}, "instructions": INSTRUCTIONS})
            await call.wait_for("session.created")
            call.microphone.play(said(QUESTIONS[index % len(QUESTIONS)]))
            done = await call.wait_for("response.done", timeout=120)
            cancelled += done["response"]["status"] == "cancelled" or bool(call.of_type("conversation.item.truncated"))
            await call.wait_for("output_audio_buffer.stopped", timeout=90)
        except TimeoutError:
            unfinished += 1  # the answer kept stopping for its own echo
        finally:
            await call.close()
    after = await metrics(url)
    counts = {name: after[name] - before[name] for name in after}
    return {"answers cut": cancelled, "answers not played out in 2-3 min": unfinished} | counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="a running edge (default: start a stack on free ports)")
    parser.add_argument("--rounds", type=int, default=16, help="interruptions to try (short answers are skipped)")
    parser.add_argument("--echo", action="store_true", help="also measure echo with the guard on and off")
    parser.add_argument("--echo-rounds", type=int, default=4)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        url = args.url or stack.enter_context(running_stack())["edge"].url
        latencies, while_audible = asyncio.run(interruptions(url, args.rounds, args.seed))
        print("\nBarge-in latency (interrupting speech's first voiced sample sent -> first answer's last")
        print("non-silent sample received):")
        print(f"  all interruptions:                         {figures(latencies)}")
        print(f"  those where the answer was audible then:   {figures(while_audible)}")
        if args.echo:
            print(f"\nEcho at -12 dB, {args.echo_rounds} long answers, guard on:")
            print(f"  {asyncio.run(echo_rounds(url, args.echo_rounds))}")
    if args.echo and not args.url:
        with running_stack(["--echo-correlation=1"]) as services:
            url = services["edge"].url
            print(f"\nEcho at -12 dB, {args.echo_rounds} long answers, guard off (--echo-correlation=1):")
            print(f"  {asyncio.run(echo_rounds(url, args.echo_rounds))}")


if __name__ == "__main__":
    main()
