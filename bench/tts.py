"""TTS benchmark: time to first audio for text streamed token by token, real-time factor, and how
many concurrent real-time streams one service process holds on this machine.

    make bench-tts          (or: .venv/bin/python -m bench.tts --help)

Prints median and p95 figures; docs/benchmarks.md keeps the latest.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from dataclasses import dataclass, field

import grpc
import numpy as np
from parley.v1 import speech_pb2_grpc

from services.tts.segmentation import TextSegmenter
from tests.support.processes import ServiceProcess, start_service
from tests.support.tts_client import END_OF_TEXT, config_request, text_request, tokens

RATE = 48000  # what the edge asks for (its outgoing WebRTC track)
REPLIES = [
    "Sure, here is how it works. The train leaves from platform four at a quarter past nine, and the journey "
    "takes about two hours. If you book today, a return ticket costs forty-five dollars. Would you like me to "
    "check the later trains as well?",
    "Good question. Paris is the capital of France, and with more than two million people it is also the "
    "country's largest city. It sits on the Seine, in the north of the country, and is known for its museums, "
    "its food and the Eiffel Tower.",
    "Let me think about that for a moment. Three plus four equals seven, and seven times six is forty-two. So "
    "if each box holds six apples and you have seven boxes, you have forty-two apples in total.",
    "Of course. To reset the router, hold the small button on the back for ten seconds until the lights "
    "flash. Then wait a minute or two while it restarts, and connect to the network again with the password "
    "printed on the label.",
]


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def summary(values: list[float], unit: str = "ms", scale: float = 1e3) -> str:
    return f"median {statistics.median(values) * scale:.0f} {unit}, p95 {percentile(values, 95) * scale:.0f} {unit}"


def first_piece_token(words: list[str]) -> int:
    """Index of the token that completes the first piece (the service's default segmentation)."""
    segmenter = TextSegmenter()
    for index, word in enumerate(words):
        if segmenter.push(word):
            return index
    return len(words) - 1


@dataclass
class StreamRun:
    """One Synthesize call fed at a language model's pace, its audio played back in real time."""

    text: str
    token_delay: float
    sent_at: list[float] = field(default_factory=list)
    first_audio_at: float | None = None
    stall_seconds: float = 0.0  # playback stalls: audio that arrived after it was due
    stalls: int = 0
    audio_seconds: float = 0.0
    finished_at: float = 0.0
    server_timings: dict[str, float] = field(default_factory=dict)

    @property
    def first_token_to_audio(self) -> float:
        assert self.first_audio_at is not None
        return self.first_audio_at - self.sent_at[0]

    @property
    def first_piece_to_audio(self) -> float:
        assert self.first_audio_at is not None
        return self.first_audio_at - self.sent_at[first_piece_token(tokens(self.text))]

    async def run(self, stub: speech_pb2_grpc.SpeechSynthesisServiceStub, start_at: float) -> None:
        words = tokens(self.text)
        call = stub.Synthesize()
        await call.write(config_request(RATE))

        async def write() -> None:
            for index, word in enumerate(words):
                delay = start_at + index * self.token_delay - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                self.sent_at.append(time.perf_counter())
                await call.write(text_request(word))
            await call.write(END_OF_TEXT)
            await call.done_writing()

        writer = asyncio.create_task(write())
        shift = 0.0  # how far playback has been pushed back by stalls
        async for response in call:
            now = time.perf_counter()
            if response.HasField("audio"):
                chunk = response.audio
                if self.first_audio_at is None:
                    self.first_audio_at = now
                due = self.first_audio_at + shift + chunk.offset_samples / RATE
                if now - due > 0.005:
                    self.stalls += 1
                    self.stall_seconds += now - due
                    shift += now - due
                self.audio_seconds = (chunk.offset_samples + len(chunk.pcm16) // 2) / RATE
            elif response.HasField("done"):
                self.server_timings = dict(response.done.timings.durations_ms)
        self.finished_at = time.perf_counter()
        await writer


async def run_level(
    service: ServiceProcess, n_streams: int, token_delay: float, spread: float
) -> tuple[list[StreamRun], float]:
    """``n_streams`` streams at once, starts spread over ``spread`` seconds; returns them and server CPU."""
    channels = [grpc.aio.insecure_channel(service.grpc_address) for _ in range(min(n_streams, 4))]
    runs = [StreamRun(REPLIES[i % len(REPLIES)], token_delay) for i in range(n_streams)]
    cpu_before, wall_before = service.cpu_seconds(), time.perf_counter()
    start_at = time.perf_counter() + 0.3
    await asyncio.gather(
        *(
            run.run(
                speech_pb2_grpc.SpeechSynthesisServiceStub(channels[i % len(channels)]),
                start_at + spread * i / n_streams,
            )
            for i, run in enumerate(runs)
        )
    )
    cpu = (service.cpu_seconds() - cpu_before) / (time.perf_counter() - wall_before)
    for channel in channels:
        await channel.close()
    return runs, cpu


async def bench(runs: int, token_delay: float, levels: list[int], stall_budget: float) -> None:
    service = start_service("services.tts")
    try:
        print(f"\nOne stream at a time, {runs} runs, tokens every {token_delay * 1e3:.0f} ms, output {RATE} Hz:")
        single: list[StreamRun] = []
        for _ in range(runs):
            level_runs, _ = await run_level(service, 1, token_delay, 0.0)
            single.extend(level_runs)
        print(f"  first token sent -> first audio received: {summary([r.first_token_to_audio for r in single])}")
        print(
            "  token completing the first clause sent -> first audio received: "
            f"{summary([r.first_piece_to_audio for r in single])}"
        )
        stalled = [r for r in single if r.stall_seconds > 0]
        worst = max(r.stall_seconds for r in single)
        print(f"  playback stalls: {len(stalled)} of {len(single)} runs, worst {worst * 1e3:.0f} ms")
        server_first = [r.server_timings["first_segment_to_audio"] / 1e3 for r in single]
        print(f"  (inside the service, first clause complete -> first audio ready: {summary(server_first)})")
        factors = [r.server_timings["synthesis"] / r.server_timings["audio"] for r in single]
        print(
            "  real-time factor (synthesis time / audio duration, per reply): "
            f"median {statistics.median(factors):.3f}, p95 {percentile(factors, 95):.3f} "
            f"({sum(r.audio_seconds for r in single):.0f} s of audio)"
        )

        # Whole replies at once: how fast the service turns text into audio when it is not waiting.
        whole = []
        for text in REPLIES:
            run = StreamRun(text, 0.0)
            async with grpc.aio.insecure_channel(service.grpc_address) as channel:
                started = time.perf_counter()
                await run.run(speech_pb2_grpc.SpeechSynthesisServiceStub(channel), started)
            whole.append((run.finished_at - started) / run.audio_seconds)
        print(
            "  whole reply sent at once, wall time to SynthesisDone / audio duration: "
            f"median {statistics.median(whole):.3f}"
        )

        print(
            f"\nConcurrent real-time streams (replies streamed at one token per {token_delay * 1e3:.0f} ms, "
            "starts spread over 1 s, audio played back in real time from its first chunk):"
        )
        print("| streams | first audio p50 | p95 | streams that stalled | worst stall total | RTF p50 | server CPU |")
        print("|---:|---:|---:|---:|---:|---:|---:|")
        held = 0
        for level in levels:
            level_runs, cpu = await run_level(service, level, token_delay, spread=1.0)
            first = [r.first_token_to_audio for r in level_runs]
            stalled = sum(1 for r in level_runs if r.stall_seconds > 0)
            worst = max(r.stall_seconds for r in level_runs)
            rtf = statistics.median(r.server_timings["synthesis"] / r.server_timings["audio"] for r in level_runs)
            print(
                f"| {level} | {statistics.median(first) * 1e3:.0f} ms | {percentile(first, 95) * 1e3:.0f} ms | "
                f"{stalled} | {worst * 1e3:.0f} ms | {rtf:.3f} | {cpu * 100:.0f}% |",
                flush=True,
            )
            if worst <= stall_budget:
                held = level
            else:
                break
        print(
            f"\nHeld in real time (no stream's playback stalled more than {stall_budget * 1e3:.0f} ms in total): "
            f"{held} streams"
        )
    finally:
        service.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20, help="single-stream runs for first-audio latency")
    parser.add_argument("--token-ms", type=float, default=25.0, help="time between tokens (a 40 token/s model)")
    parser.add_argument("--levels", default="2,4,8,12,16,24,32", help="concurrent stream counts to try")
    parser.add_argument("--stall-budget-ms", type=float, default=100.0, help="playback stall a held stream may have")
    args = parser.parse_args()
    print(f"TTS benchmark on {os.cpu_count()} cores")
    asyncio.run(
        bench(
            args.runs,
            args.token_ms / 1e3,
            [int(level) for level in args.levels.split(",")],
            args.stall_budget_ms / 1e3,
        )
    )


if __name__ == "__main__":
    main()
