"""The words' end-of-turn score (issue 15): how well the LLM service's ScoreEndOfTurn tells a
sentence cut at a pause from a finished one, and what it costs.

    make bench-text-turns      (or: .venv/bin/python -m bench.text_turns --help)

Through the real LLM service over gRPC, on the labelled sentences of tests/support/turn_samples.py
(each cut where a person might pause, and whole). Prints each class's scores, the threshold that
separates them best with its counts, and the scoring time (median, p95) for a session without
history, for one 8 turns into a conversation (the session's cache then holds the history), and
for the last word of a sentence scored word by word as partial transcripts would come.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import uuid

import grpc
from parley.v1 import conversation_pb2, conversation_pb2_grpc

from bench.llm import FOLLOW_UPS, figures
from tests.support.llm_client import ask
from tests.support.processes import start_service
from tests.support.turn_samples import SENTENCES


async def run(address: str) -> None:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = conversation_pb2_grpc.ConversationServiceStub(channel)
        complete, cut, fresh_ms = [], [], []
        for first, rest in SENTENCES:
            for text, scores in ((first, cut), (f"{first} {rest}", complete)):
                reply = await stub.ScoreEndOfTurn(conversation_pb2.ScoreEndOfTurnRequest(transcript=text))
                scores.append(reply.probability)
                fresh_ms.append(reply.inference_ms)
        session = f"bench-{uuid.uuid4().hex[:8]}"
        for question in FOLLOW_UPS:
            await ask(channel, session, question, generation={"max_output_tokens": 24})
        history_ms, growing_ms = [], []
        for first, rest in SENTENCES:
            request = conversation_pb2.ScoreEndOfTurnRequest(session_id=session, transcript=f"{first} {rest}")
            history_ms.append((await stub.ScoreEndOfTurn(request)).inference_ms)
        for first, rest in SENTENCES:  # as partial transcripts come: the words so far, then one more each time
            words = f"{first} {rest}".split()
            for count in range(1, len(words) + 1):
                request = conversation_pb2.ScoreEndOfTurnRequest(session_id=session, transcript=" ".join(words[:count]))
                reply = await stub.ScoreEndOfTurn(request)
            growing_ms.append(reply.inference_ms)
    print("complete:", " ".join(f"{p:.3f}" for p in sorted(complete)))
    print("cut:     ", " ".join(f"{p:.5f}" for p in sorted(cut)))
    best = max((sum(p >= t for p in complete) + sum(p < t for p in cut), t) for t in sorted({*complete, *cut, 1.0}))
    print(
        f"best threshold {best[1]:.4f}: {best[0]} of {len(complete) + len(cut)} right "
        f"(complete at or above it {sum(p >= best[1] for p in complete)}/{len(complete)}, "
        f"cut below it {sum(p < best[1] for p in cut)}/{len(cut)})"
    )
    for name, times in (
        ("no history", fresh_ms),
        ("8 turns of history", history_ms),
        ("8 turns of history, the words scored as they grew (the last word's score)", growing_ms),
    ):
        print(f"scoring time, {name}: {figures(times, scale=1)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--python", default=sys.executable)
    args = parser.parse_args()
    service = start_service("services.llm", "--max-sessions=64", timeout=600, python=args.python)
    try:
        asyncio.run(run(service.grpc_address))
    finally:
        service.stop()


if __name__ == "__main__":
    main()
