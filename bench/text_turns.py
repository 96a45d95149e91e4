"""The words' end-of-turn score (issue 15): how well the LLM service's ScoreEndOfTurn tells a
sentence cut at a pause from a finished one, and what it costs.

    make bench-text-turns      (or: .venv/bin/python -m bench.text_turns --help)

Through the real LLM service over gRPC, on the labelled sentences of tests/support/turn_samples.py
(each cut where a person might pause, and whole). Prints each class's scores, the threshold that
separates them best with its counts, and the scoring time (median, p95) for a session without
history, for one 8 turns into a conversation (the session's cache then holds the history), and
for the last word of a sentence scored word by word as partial transcripts would come; then what
the score costs inside a reply (``TurnHeader.score_end_of_turn``, the edge's way): the reply's time
to first token with and without it, each sentence asked both ways in fresh sessions.
``--from-speech``: the set spoken (Piper and espeak-ng, each first part on its own) and heard by the
service's recogniser, each transcript then scored: what the words look like at a real pause.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import uuid

import grpc
import numpy as np
from parley.v1 import conversation_pb2, conversation_pb2_grpc

from bench.llm import FOLLOW_UPS, figures
from services.common.words import bare_words
from tests.support.llm_client import END, ask, audio_chunks, header, respond
from tests.support.processes import start_service
from tests.support.speech import VOICES
from tests.support.turn_samples import RATE, SENTENCES


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
        asked, unasked, in_reply_ms = [], [], []
        for first, rest in SENTENCES:  # interleaved, so both see the same machine
            for scored in (True, False):
                result = await ask(
                    channel,
                    f"bench-{uuid.uuid4().hex[:8]}",
                    f"{first} {rest}",
                    score_end_of_turn=scored,
                    generation={"max_output_tokens": 1},
                )
                assert result.done is not None
                (asked if scored else unasked).append(result.done.timings.durations_ms["first_token"])
                if scored and result.end_of_turn is not None:
                    in_reply_ms.append(result.end_of_turn.inference_ms)
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
    print(f"in a reply, time to first token with the words scored: {figures(asked, scale=1)}")
    print(f"in a reply, time to first token without:              {figures(unasked, scale=1)}")
    print(
        f"  ratio of medians {np.median(asked) / np.median(unasked):.2f}; the prompt's computation that "
        f"yields the score: {figures(in_reply_ms, scale=1)}"
    )


async def run_from_speech(address: str) -> None:
    """The same set as the recogniser hears it: each first part spoken on its own (a sentence-final
    fall, as a person stopping to think says it) and each whole sentence, in both voices, through
    the service's own recognition (a transcribe-only turn), then scored. What a fusion of sound
    and words would see at the pause."""
    async with grpc.aio.insecure_channel(address) as channel:
        stub = conversation_pb2_grpc.ConversationServiceStub(channel)
        scored: dict[tuple[str, bool], list[tuple[float, str]]] = {}
        for voice_name, voice in VOICES.items():
            for first, rest in SENTENCES:
                for text, complete in ((first, False), (f"{first} {rest}", True)):
                    audio = np.concatenate((voice(text), np.zeros(RATE // 2, np.float32)))
                    session = f"bench-{uuid.uuid4().hex[:8]}"
                    heard = await respond(channel, [header(session, transcribe_only=True), *audio_chunks(audio), END])
                    transcript = (heard.transcript or "").strip()
                    for form, words in (
                        ("as heard", transcript),
                        ("without closing punctuation", bare_words(transcript)),
                    ):
                        probability = 0.0
                        if words:
                            request = conversation_pb2.ScoreEndOfTurnRequest(transcript=words)
                            probability = (await stub.ScoreEndOfTurn(request)).probability
                        scored.setdefault((form, voice_name, complete), []).append((probability, words))
                    await stub.EndSession(conversation_pb2.EndSessionRequest(session_id=session))
    for form in ("as heard", "without closing punctuation"):
        print(f"== the transcripts {form}")
        for (_, voice_name, complete), results in sorted(i for i in scored.items() if i[0][0] == form):
            print(f"{voice_name} {'whole' if complete else 'first part alone'}:")
            for probability, transcript in sorted(results):
                print(f"  {probability:.2e}  {transcript!r}")
        complete = [p for (f, _, whole), results in scored.items() if f == form and whole for p, _ in results]
        cut = [p for (f, _, whole), results in scored.items() if f == form and not whole for p, _ in results]
        thresholds = sorted({*complete, *cut, 1.0})
        best = max((sum(p >= t for p in complete) + sum(p < t for p in cut), t) for t in thresholds)
        print(
            f"best threshold {best[1]:.2e}: {best[0]} of {len(complete) + len(cut)} right "
            f"(whole at or above it {sum(p >= best[1] for p in complete)}/{len(complete)}, "
            f"first parts below it {sum(p < best[1] for p in cut)}/{len(cut)})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument(
        "--from-speech", action="store_true", help="score the recogniser's transcripts of the set spoken in two voices"
    )
    args = parser.parse_args()
    service = start_service("services.llm", "--max-sessions=64", timeout=600, python=args.python)
    try:
        asyncio.run(run_from_speech(service.grpc_address) if args.from_speech else run(service.grpc_address))
    finally:
        service.stop()


if __name__ == "__main__":
    main()
