"""Voice-to-voice latency through the whole stack, as a caller hears it.

    make bench-v2v          (or: .venv/bin/python -m bench.voice_to_voice --help)

A Python WebRTC client (aiortc, loopback) calls the edge in half-duplex mode and speaks questions
(the bundled Piper voice, or espeak-ng) into its microphone track in real time, each followed by
silence. The user's turn ends on silence (server_vad) or on the turn model (--turn-detection
semantic_vad). For every turn it
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
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from tests.support import speech
from tests.support.processes import running_stack
from tests.support.speech import piper_voice
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
    "tts_first_segment_to_audio",
    "text_to_first_audio",
    "voice_to_voice",
]


def figures(values: list[float]) -> str:
    if not values:
        return "n/a"
    return f"median {statistics.median(values):6.0f} ms   p95 {np.percentile(values, 95):6.0f} ms   (n={len(values)})"


def espeak_at_call_rate(text: str) -> np.ndarray:
    return speech.speak(text, RATE)


def piper_at_call_rate(text: str) -> np.ndarray:
    return speech.resample(piper_voice(text), 16000, RATE)


VOICES: dict[str, Callable[[str], np.ndarray]] = {"espeak": espeak_at_call_rate, "piper": piper_at_call_rate}


@dataclass
class Results:
    asked: int = 0
    latencies: list[float] = field(default_factory=list)  # one per answered question
    stages: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    end_reasons: list[str] = field(default_factory=list)


def turn_detection(kind: str, silence_ms: int, eagerness: str) -> dict[str, object]:
    if kind == "semantic_vad":
        return {"type": "semantic_vad", "eagerness": eagerness}
    return {"type": "server_vad", "silence_duration_ms": silence_ms}


async def bench(
    url: str,
    turns: int,
    detection: dict[str, object],
    client_prefetch: int,
    voice: str = "piper",
    first_question: int = 0,
    label: str = "",
) -> Results:
    """One call asking ``turns`` questions; a question not answered within a minute ends the call."""
    call = RealtimeCall(url, receive_prefetch=client_prefetch)
    session = {
        "type": "realtime",
        "parley": {"mode": "half_duplex"},
        "audio": {"input": {"turn_detection": detection}},
    }
    await call.connect(session)
    await call.wait_for("session.created")
    results = Results()
    say = VOICES[voice]
    try:
        for index in range(turns):
            question = QUESTIONS[(first_question + index) % len(QUESTIONS)]
            spoken = say(question)
            voiced = spoken[: speech.voiced_bounds(spoken, RATE)[1]]  # ends with its last voiced sample
            before = len(call.events)
            clips = len(call.microphone.clip_ended)
            # A breath before speaking: the edge ignores the microphone for its echo guard (300 ms)
            # after the assistant's last word.
            call.microphone.play(np.zeros(int(RATE * 0.6), np.float32))
            call.microphone.play(voiced)
            call.microphone.play(np.zeros(RATE * 3, np.float32))  # silence after the question
            results.asked += 1
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
                print(f"{label}turn {index + 1}: no audio heard ({transcript!r})", file=sys.stderr)
                continue
            latency = (heard - speech_end) * 1000
            results.latencies.append(latency)
            parley = done["response"].get("parley", {})
            timings = parley.get("timings_ms", {})
            for stage in STAGES:
                if stage in timings:
                    results.stages[stage].append(timings[stage])
            end = parley.get("end_of_turn", {})
            results.end_reasons.append(end.get("reason", "?"))
            how = end.get("reason", "?") + (f" p={end['probability']:.2f}" if "probability" in end else "")
            print(f"{label}turn {index + 1:2d}: {latency:5.0f} ms  [{how}] {transcript!r} -> {reply!r}", flush=True)
    except TimeoutError:
        print(f"{label}no answer within a minute; call ended", file=sys.stderr)
    finally:
        await call.close()
    return results


def report(results: Results, detection: dict[str, object], voice: str) -> None:
    print(
        f"\nVoice to voice, client side (last speech sample sent -> first audible sample received), "
        f"{voice} voice, turn detection {detection}:"
    )
    print(f"  {figures(results.latencies)}")
    print("\nServer stages (response.done parley.timings_ms; from the end of speech unless named):")
    for stage in STAGES:
        print(f"  {stage:<22} {figures(results.stages[stage])}")
    reasons = {reason: results.end_reasons.count(reason) for reason in sorted(set(results.end_reasons))}
    print(f"\nTurns ended by: {reasons}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="a running edge (default: start a stack on free ports)")
    parser.add_argument("--turns", type=int, default=12)
    parser.add_argument("--silence-ms", type=int, default=500, help="server VAD silence that ends a turn")
    parser.add_argument("--turn-detection", choices=["server_vad", "semantic_vad"], default="server_vad")
    parser.add_argument("--eagerness", choices=["low", "medium", "high", "auto"], default="auto")
    parser.add_argument("--voice", choices=sorted(VOICES), default="piper", help="who asks the questions")
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
    detection = turn_detection(args.turn_detection, args.silence_ms, args.eagerness)
    with contextlib.ExitStack() as stack:
        url = args.url or stack.enter_context(running_stack(args.edge_arg, args.llm_arg, args.tts_arg))["edge"].url
        results = asyncio.run(bench(url, args.turns, detection, args.client_prefetch, args.voice))
    report(results, detection, args.voice)


if __name__ == "__main__":
    main()
