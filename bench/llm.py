"""LLM service benchmark: speech recognition latency, time to first token on turn 1 and turn 8
of a session, decode speed, and decode speed with 4 concurrent sessions.

    make bench-llm          (or: .venv/bin/python -m bench.llm --help)

Each figure is measured through the real service over gRPC; audio is streamed in real time
(100 ms chunks) as the edge would. Prints median and p95; docs/benchmarks.md keeps the latest.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
import uuid

import grpc
import numpy as np
from parley.v1 import conversation_pb2, conversation_pb2_grpc

from tests.support import speech
from tests.support.llm_client import END, audio_chunks, header, text
from tests.support.processes import start_service

RATE = 16000
SHORT = "What is the capital of France?"  # about 2 s
LONG = "I was wondering whether you could tell me what the weather will be like in Paris tomorrow afternoon."
FOLLOW_UPS = [
    "What is the capital of France?",
    "And of Italy?",
    "Which one is bigger?",
    "Name a famous museum there.",
    "What can I eat there?",
    "Is it expensive?",
    "When should I go?",
    "Thanks. What is the capital of Spain?",
]


def figures(values: list[float], unit: str = "ms", scale: float = 1000) -> str:
    return (
        f"median {statistics.median(values) * scale:.0f} {unit}, p95 {np.percentile(values, 95) * scale:.0f} {unit}"
        f" (n={len(values)})"
    )


class Turn:
    """One streamed turn, with the times that matter noted as responses arrive."""

    def __init__(self, stub: conversation_pb2_grpc.ConversationServiceStub) -> None:
        self.call = stub.Respond()
        self.end_sent = 0.0
        self.transcript_at = 0.0
        self.transcript = ""
        self.token_times: list[float] = []
        self.done: conversation_pb2.TurnDone | None = None

    async def run(self, requests: list[conversation_pb2.RespondRequest], pace_seconds: float = 0.0) -> Turn:
        reader = asyncio.create_task(self._read())
        for request in requests:
            if pace_seconds and request.HasField("audio"):
                await asyncio.sleep(pace_seconds)
            if request.HasField("end_of_input"):
                self.end_sent = time.perf_counter()
            await self.call.write(request)
        await self.call.done_writing()
        await reader
        return self

    async def _read(self) -> None:
        async for response in self.call:
            now = time.perf_counter()
            kind = response.WhichOneof("event")
            if kind == "user_transcript" and response.user_transcript.is_final:
                self.transcript_at, self.transcript = now, response.user_transcript.text
            elif kind == "text_delta":
                self.token_times.append(now)
            elif kind == "done":
                self.done = response.done

    @property
    def first_token(self) -> float:
        return self.token_times[0] - max(self.end_sent, self.transcript_at)

    @property
    def decode_rate(self) -> float:
        tokens = self.done.usage.output_tokens if self.done else 0
        span = self.token_times[-1] - self.token_times[0]
        return (tokens - 1) / span if tokens > 1 and span > 0 else float("nan")


async def bench(address: str, runs: int) -> None:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = conversation_pb2_grpc.ConversationServiceStub(channel)

        async def turn(session: str, requests, pace: float = 0.0, **fields) -> Turn:
            return await Turn(stub).run([header(session, **fields), *requests, END], pace)

        async def one_turn(requests, pace: float = 0.0, **fields) -> Turn:
            """A turn of a new session, ended afterwards."""
            session = uuid.uuid4().hex
            try:
                return await turn(session, requests, pace, **fields)
            finally:
                await stub.EndSession(conversation_pb2.EndSessionRequest(session_id=session))

        # Warm-up: the first turns of a process pay for lazy initialisation.
        for _ in range(2):
            await one_turn([text("Hello")], generation={"max_output_tokens": 4})

        print("\nSpeech recognition, end of input -> final transcript (audio streamed in real time, 100 ms chunks,")
        print("then 400 ms of silence as a VAD would leave before ending the turn):")
        for label, sentence in (("2 s", SHORT), ("6 s", LONG)):
            voiced = speech.trim(speech.speak(sentence, RATE), RATE)
            audio, _ = speech.compose([0.2, voiced, 0.4], RATE)
            for paced in (True, False):
                latencies, transcript = [], ""
                for _ in range(runs):
                    result = await one_turn(
                        audio_chunks(audio, RATE, 100),
                        pace=0.1 if paced else 0.0,
                        transcribe_only=True,
                    )
                    latencies.append(result.transcript_at - result.end_sent)
                    transcript = result.transcript
                mode = "real time" if paced else "all at once"
                print(f"  {label} utterance ({len(voiced) / RATE:.1f} s voiced), {mode}: {figures(latencies)}")
            print(f"    heard: {transcript!r}")

        print("\nTime to first token (end of input -> first text delta), text turns:")
        by_turn: dict[int, list[float]] = {1: [], 8: []}
        for _ in range(runs):
            session = uuid.uuid4().hex
            for index, question in enumerate(FOLLOW_UPS, start=1):
                result = await turn(session, [text(question)], generation={"max_output_tokens": 24})
                if index in by_turn:
                    by_turn[index].append(result.first_token)
                if index == 8:
                    cached, total = result.done.usage.cached_input_tokens, result.done.usage.input_tokens
            await stub.EndSession(conversation_pb2.EndSessionRequest(session_id=session))
        print(f"  turn 1: {figures(by_turn[1])}")
        print(f"  turn 8: {figures(by_turn[8])}  (prompt {total} tokens, {cached} from the session cache)")
        ratio = statistics.median(by_turn[8]) / statistics.median(by_turn[1])
        print(f"  turn 8 / turn 1: {ratio:.2f}")

        story = [text("Tell me a long story about a lighthouse keeper and a storm.")]
        long_reply = {"generation": {"max_output_tokens": 160}}
        rates = [(await one_turn(story, **long_reply)).decode_rate for _ in range(runs)]
        print(f"\nDecode, one session: median {statistics.median(rates):.1f} tokens/s, min {min(rates):.1f}")

        aggregate, per_session = [], []
        for _ in range(max(1, runs // 2)):
            started = time.perf_counter()
            results = await asyncio.gather(*(one_turn(story, **long_reply) for _ in range(4)))
            elapsed = time.perf_counter() - started
            tokens = sum(r.done.usage.output_tokens for r in results)
            aggregate.append(tokens / elapsed)
            per_session.extend(r.decode_rate for r in results)
        print(
            f"Decode, 4 concurrent sessions: {statistics.median(aggregate):.1f} tokens/s in all, "
            f"{statistics.median(per_session):.1f} tokens/s per session (median)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=["transformers", "vllm"], default="transformers")
    parser.add_argument("--python", default=sys.executable, help="interpreter of the service (vllm: .venv-vllm)")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    print(f"LLM benchmark, backend {args.backend}, {os.cpu_count()} cores")
    started = time.perf_counter()
    service = start_service("services.llm", "--backend", args.backend, timeout=600, python=args.python)
    print(f"service ready in {time.perf_counter() - started:.1f} s")
    try:
        asyncio.run(bench(service.grpc_address, args.runs))
    finally:
        service.stop()


if __name__ == "__main__":
    main()
