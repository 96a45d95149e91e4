"""VAD benchmark: per-window inference time, speech-end event latency over gRPC, and how many
real-time 16 kHz streams one service process holds on this machine.

    make bench-vad          (or: .venv/bin/python -m bench.vad --help)

Prints median and p95 figures; docs/benchmarks.md keeps the latest. Needs espeak-ng.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
import urllib.request
from dataclasses import dataclass, field

import grpc
import numpy as np
from parley.v1 import vad_pb2_grpc

from services.vad.model import SileroVad, context_samples, initial_state, window_samples
from tests.support import speech
from tests.support.processes import ServiceProcess, start_service
from tests.support.vad_client import audio_requests, config_request

RATE = 16000
CHUNK_MS = 32
MIN_SILENCE_MS = 300
PAD_MS = 30
SENTENCES = [
    "Could you tell me how long the train takes to Lyon?",
    "I would like two coffees and a croissant, please.",
    "Turn the living room lights off at ten.",
]


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def summary(values: list[float], unit: str = "ms", scale: float = 1e3) -> str:
    return f"median {statistics.median(values) * scale:.2f} {unit}, p95 {percentile(values, 95) * scale:.2f} {unit}"


def bench_inference(audio: np.ndarray, repeats: int) -> None:
    model = SileroVad()
    window, context = window_samples(RATE), context_samples(RATE)
    usable = len(audio) // window * window
    windows = audio[:usable].reshape(-1, window)
    for batch in (1, 32, 128):
        times = []
        for _ in range(repeats):
            state = np.repeat(initial_state()[:, None, :], batch, axis=1)
            previous = np.zeros((batch, context), np.float32)
            for row in windows:
                inputs = np.concatenate((previous, np.repeat(row[None, :], batch, axis=0)), axis=1)
                started = time.perf_counter()
                _, state = model.infer(inputs, state, RATE)
                times.append((time.perf_counter() - started) / batch)
                previous = inputs[:, -context:]
        print(f"  batch {batch:>3}: per 32 ms window {summary(times, 'µs', 1e6)}  ({len(times)} steps)")


@dataclass
class PacedStream:
    """One real-time stream: sends 32 ms chunks on the audio clock, notes when each was sent."""

    audio: np.ndarray
    phase: float
    sent_at: list[float] = field(default_factory=list)
    decision_latencies: list[float] = field(default_factory=list)  # decisive chunk sent -> event received
    end_latencies: list[float] = field(default_factory=list)  # speech-end chunk sent -> event, minus silence
    send_lag: list[float] = field(default_factory=list)  # how late the client sent, vs its schedule

    def chunk_of(self, sample: int) -> int:
        return max(0, (sample - 1)) // (RATE * CHUNK_MS // 1000)

    async def run(self, stub: vad_pb2_grpc.VoiceActivityServiceStub, start_at: float) -> None:
        requests = audio_requests(self.audio, RATE, CHUNK_MS)
        call = stub.Detect()
        await call.write(config_request(RATE, min_silence_ms=MIN_SILENCE_MS, speech_pad_ms=PAD_MS))
        reader = asyncio.create_task(self._read(call))
        for index, request in enumerate(requests):
            due = start_at + self.phase + index * CHUNK_MS / 1000
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            self.send_lag.append(max(0.0, time.perf_counter() - due))
            self.sent_at.append(time.perf_counter())
            await call.write(request)
        await call.done_writing()
        await reader

    async def _read(self, call: grpc.aio.StreamStreamCall) -> None:
        pad = RATE * PAD_MS // 1000
        async for response in call:
            received = time.perf_counter()
            if not response.HasField("speech_ended"):
                continue
            decisive = self.chunk_of(response.processed_samples)
            if decisive < len(self.sent_at):
                self.decision_latencies.append(received - self.sent_at[decisive])
            speech_end = self.chunk_of(response.speech_ended.end_offset_samples - pad)
            if speech_end < len(self.sent_at) and response.processed_samples < len(self.audio):
                self.end_latencies.append(received - self.sent_at[speech_end] - MIN_SILENCE_MS / 1000)


def behind_realtime_total(service: ServiceProcess) -> float:
    with urllib.request.urlopen(service.metrics_url, timeout=10) as response:
        for line in response.read().decode().splitlines():
            if line.startswith("parley_vad_behind_realtime_total "):
                return float(line.split()[1])
    return 0.0


async def run_streams(service: ServiceProcess, recordings: list[np.ndarray], n_streams: int) -> dict[str, float]:
    """Run ``n_streams`` paced streams at once; return latency and load figures."""
    # A few channels, as an edge with several connections would have; phases spread the sends.
    channels = [grpc.aio.insecure_channel(service.grpc_address) for _ in range(4)]
    streams = [
        PacedStream(recordings[i % len(recordings)], phase=(i / n_streams) * CHUNK_MS / 1000) for i in range(n_streams)
    ]
    behind_before = behind_realtime_total(service)
    cpu_before, wall_before = service.cpu_seconds(), time.perf_counter()
    start_at = time.perf_counter() + 0.5
    await asyncio.gather(
        *(
            stream.run(vad_pb2_grpc.VoiceActivityServiceStub(channels[i % len(channels)]), start_at)
            for i, stream in enumerate(streams)
        )
    )
    cpu = (service.cpu_seconds() - cpu_before) / (time.perf_counter() - wall_before)
    for channel in channels:
        await channel.close()
    decisions = [x for s in streams for x in s.decision_latencies]
    lags = [x for s in streams for x in s.send_lag]
    return {
        "streams": n_streams,
        "events": len(decisions),
        "p50": statistics.median(decisions) * 1e3,
        "p95": percentile(decisions, 95) * 1e3,
        "client_lag_p95": percentile(lags, 95) * 1e3,
        "server_cpu": cpu * 100,
        "behind": behind_realtime_total(service) - behind_before,
    }


async def bench_service(recordings: list[np.ndarray], runs: int, levels: list[int]) -> None:
    service = start_service("services.vad")
    try:
        stub_channel = grpc.aio.insecure_channel(service.grpc_address)
        stub = vad_pb2_grpc.VoiceActivityServiceStub(stub_channel)
        single: list[PacedStream] = []
        for run in range(runs):
            stream = PacedStream(recordings[run % len(recordings)], phase=0.0)
            await stream.run(stub, time.perf_counter())
            single.append(stream)
        await stub_channel.close()
        decisions = [x for s in single for x in s.decision_latencies]
        ends = [x for s in single for x in s.end_latencies]
        print(f"\nEvent latency, one real-time stream, {len(decisions)} speech ends over {runs} runs:")
        print(f"  decisive chunk sent -> speech_ended received: {summary(decisions)}")
        print(
            f"  chunk with the detected speech end sent -> speech_ended received, minus the {MIN_SILENCE_MS} ms "
            f"silence: {summary(ends)}"
        )
        print("\nConcurrent real-time streams (32 ms chunks, speech and silence), one service process:")
        print(
            "| streams | speech ends | event latency p50 | p95 | client send lag p95 | server CPU | behind-real-time |"
        )
        print("|---:|---:|---:|---:|---:|---:|---:|")
        held = 0
        for level in levels:
            figures = await run_streams(service, recordings, level)
            print(
                f"| {level} | {figures['events']:.0f} | {figures['p50']:.1f} ms | {figures['p95']:.1f} ms | "
                f"{figures['client_lag_p95']:.1f} ms | {figures['server_cpu']:.0f}% | {figures['behind']:.0f} |",
                flush=True,
            )
            if figures["p95"] < 30 and figures["behind"] == 0:
                held = level
            else:
                break
        print(f"\nHeld in real time with p95 event latency under 30 ms: {held} streams")
    finally:
        service.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=9, help="single-stream latency runs")
    parser.add_argument("--inference-repeats", type=int, default=3)
    parser.add_argument("--levels", default="25,50,100,150,200,250,300", help="concurrent stream counts to try")
    args = parser.parse_args()
    utterances = [speech.trim(speech.speak(text, RATE), RATE) for text in SENTENCES]
    recordings = [
        speech.compose([0.4, u, 1.2, utterances[(i + 1) % 3], 1.0], RATE)[0] for i, u in enumerate(utterances)
    ]
    print(f"VAD benchmark on {os.cpu_count()} cores")
    print("\nModel inference in process (onnxruntime, 1 thread):")
    bench_inference(np.concatenate(recordings), args.inference_repeats)
    asyncio.run(bench_service(recordings, args.runs, [int(x) for x in args.levels.split(",")]))


if __name__ == "__main__":
    main()
