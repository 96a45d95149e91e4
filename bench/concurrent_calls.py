"""Voice to voice with several calls at once on one stack.

    make bench-concurrent   (or: .venv/bin/python -m bench.concurrent_calls --help)

For each N (1, 2, 4, 6 by default) N WebRTC calls (aiortc, loopback, half-duplex, server VAD
500 ms) start a second and a half apart and each asks spoken questions (the bundled Piper voice)
in real time, every one after the previous answer has played out, as bench.voice_to_voice does
for one call. Prints per N the voice-to-voice median and p95 over every answered question, and
answered/asked. The calls' clients, the edge and the three services share the machine's cores,
as they would on a one-box deployment; the clients' own Opus coding is part of the load.

Without --url it starts its own stack (vad, llm, tts, edge) on free ports, once for all N.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics

import numpy as np

from bench.voice_to_voice import STAGES, Results, bench, figures, turn_detection
from tests.support.processes import running_stack

STAGGER_SECONDS = 1.5


async def calls_at_once(url: str, calls: int, turns: int, detection: dict[str, object]) -> list[Results]:
    async def one_call(index: int) -> Results:
        await asyncio.sleep(index * STAGGER_SECONDS)
        return await bench(url, turns, detection, 1, "piper", first_question=index * 3, label=f"[{calls}:{index}] ")

    return list(await asyncio.gather(*(one_call(index) for index in range(calls))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="a running edge (default: start a stack on free ports)")
    parser.add_argument("--calls", type=int, nargs="+", default=[1, 2, 4, 6], help="numbers of calls at once")
    parser.add_argument("--turns", type=int, default=6, help="questions each call asks")
    parser.add_argument("--edge-arg", action="append", default=[], help="extra flag for the edge this starts")
    parser.add_argument("--llm-arg", action="append", default=[], help="extra flag for the LLM service this starts")
    parser.add_argument("--tts-arg", action="append", default=[], help="extra flag for the TTS service this starts")
    args = parser.parse_args()
    detection = turn_detection("server_vad", 500, "auto")
    rows = []
    with contextlib.ExitStack() as stack:
        url = args.url or stack.enter_context(running_stack(args.edge_arg, args.llm_arg, args.tts_arg))["edge"].url
        for calls in args.calls:
            results = asyncio.run(calls_at_once(url, calls, args.turns, detection))
            latencies = [latency for result in results for latency in result.latencies]
            asked = sum(result.asked for result in results)
            rows.append((calls, latencies, asked))
            print(f"\nServer stages with {calls} calls at once (median, p95 over every answered question):")
            for stage in STAGES:
                print(f"  {stage:<22} {figures([v for result in results for v in result.stages[stage]])}")
    print("\nVoice to voice, client side (last speech sample sent -> first audible sample received):")
    print("| calls at once | median | p95 | answered / asked |")
    print("|---:|---:|---:|---:|")
    for calls, latencies, asked in rows:
        median = f"{statistics.median(latencies):.0f} ms" if latencies else "n/a"
        p95 = f"{np.percentile(latencies, 95):.0f} ms" if latencies else "n/a"
        print(f"| {calls} | {median} | {p95} | {len(latencies)} / {asked} |")


if __name__ == "__main__":
    main()
