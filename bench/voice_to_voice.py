"""Voice-to-voice latency through the whole stack, as a caller hears it.

    make bench-v2v          (or: .venv/bin/python -m bench.voice_to_voice --help)

A Python WebRTC client (aiortc, loopback) calls the edge in half-duplex mode and speaks questions
(espeak-ng) into its microphone track in real time, each followed by silence. For every turn it
measures the time from the last speech sample sent to the first audible assistant sample
received on the remote track, and collects the server's own per-stage timings from
``response.done``. Prints median and p95; docs/benchmarks.md keeps the latest.

Without --url it starts its own stack (vad, llm, tts, edge) on free ports.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
from collections import defaultdict
from collections.abc import Iterator

import numpy as np

from tests.support import speech
from tests.support.processes import ServiceProcess, start_edge, start_service
from tests.support.webrtc_client import RATE, RealtimeCall

QUESTIONS = [
    "What is the capital of France?",
    "What is two plus two?",
    "Name a primary color.",
    "What is the capital of Italy?",
    "How many days are in a week?",
    "What color is the sky?",
    "What is the capital of Spain?",
    "Name a fruit that is yellow.",
    "What is the opposite of hot?",
    "How many legs does a dog have?",
    "What is the capital of Germany?",
    "What do bees make?",
]
STAGES = [
    "end_of_speech_wait",
    "llm_asr",
    "llm_first_token",
    "first_text",
    "tts_first_audio",
    "text_to_first_audio",
    "voice_to_voice",
]


def figures(values: list[float]) -> str:
    if not values:
        return "n/a"
    return f"median {statistics.median(values):6.0f} ms   p95 {np.percentile(values, 95):6.0f} ms   (n={len(values)})"


@contextlib.contextmanager
def own_stack(edge_args: list[str], tts_args: list[str], llm_args: list[str]) -> Iterator[str]:
    started: list[ServiceProcess] = []
    try:
        vad = start_service("services.vad")
        started.append(vad)
        llm = start_service("services.llm", *llm_args, timeout=180)
        started.append(llm)
        tts = start_service("services.tts", *tts_args)
        started.append(tts)
        edge = start_edge(vad, llm, tts, *edge_args)
        started.append(edge)
        yield edge.url
    finally:
        for service in reversed(started):
            service.stop()


async def bench(url: str, turns: int, silence_ms: int, client_prefetch: int) -> None:
    call = RealtimeCall(url, receive_prefetch=client_prefetch)
    session = {
        "type": "realtime",
        "parley": {"mode": "half_duplex"},
        "audio": {"input": {"turn_detection": {"type": "server_vad", "silence_duration_ms": silence_ms}}},
    }
    await call.connect(session)
    await call.wait_for("session.created")
    latencies: list[float] = []
    stages: dict[str, list[float]] = defaultdict(list)
    try:
        for index in range(turns):
            question = QUESTIONS[index % len(QUESTIONS)]
            spoken = speech.speak(question, RATE)
            voice = spoken[: speech.voiced_bounds(spoken, RATE)[1]]  # ends with its last voiced sample
            before = len(call.events)
            clips = len(call.microphone.clip_ended)
            # A breath before speaking: the edge ignores the microphone for its echo guard (300 ms)
            # after the assistant's last word.
            call.microphone.play(np.zeros(int(RATE * 0.6), np.float32))
            call.microphone.play(voice)
            call.microphone.play(np.zeros(RATE * 2, np.float32))  # silence after the question
            done = await call.wait_for("response.done", after=before, timeout=60)
            await call.wait_for("output_audio_buffer.stopped", after=before, timeout=60)
            await asyncio.wait_for(call.microphone.played_out(), 30)
            speech_end = call.microphone.clip_ended[clips + 1]
            heard = call.first_loud_time(after=speech_end)
            transcript = next(
                (
                    e["transcript"]
                    for e in call.events[before:]
                    if e["type"] == "conversation.item.input_audio_transcription.completed"
                ),
                "",
            )
            reply = (
                done["response"]["output"][0]["content"][0].get("transcript", "") if done["response"]["output"] else ""
            )
            if heard is None:
                print(f"turn {index + 1}: no audio heard ({transcript!r})", file=sys.stderr)
                continue
            latency = (heard - speech_end) * 1000
            latencies.append(latency)
            timings = done["response"].get("parley", {}).get("timings_ms", {})
            for stage in STAGES:
                if stage in timings:
                    stages[stage].append(timings[stage])
            print(f"turn {index + 1:2d}: {latency:5.0f} ms  {transcript!r} -> {reply!r}", flush=True)
    finally:
        await call.close()
    print(
        f"\nVoice to voice, client side (last speech sample sent -> first audible sample received), "
        f"server VAD silence {silence_ms} ms:"
    )
    print(f"  {figures(latencies)}")
    print("\nServer stages (response.done parley.timings_ms; from the end of speech unless named):")
    for stage in STAGES:
        print(f"  {stage:<22} {figures(stages[stage])}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="a running edge (default: start a stack on free ports)")
    parser.add_argument("--turns", type=int, default=12)
    parser.add_argument("--silence-ms", type=int, default=500, help="server VAD silence that ends a turn")
    parser.add_argument("--edge-arg", action="append", default=[], help="extra flag for the edge this starts")
    parser.add_argument("--tts-arg", action="append", default=[], help="extra flag for the TTS service this starts")
    parser.add_argument("--llm-arg", action="append", default=[], help="extra flag for the LLM service this starts")
    parser.add_argument(
        "--client-prefetch",
        type=int,
        default=1,
        help="frames the client's receive buffer holds (aiortc's default is 4; 1 is close to a browser on loopback)",
    )
    args = parser.parse_args()
    if args.url:
        asyncio.run(bench(args.url, args.turns, args.silence_ms, args.client_prefetch))
        return
    with own_stack(args.edge_arg, args.tts_arg, args.llm_arg) as url:
        asyncio.run(bench(url, args.turns, args.silence_ms, args.client_prefetch))


if __name__ == "__main__":
    main()
