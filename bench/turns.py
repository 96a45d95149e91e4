"""End of turn: the turn model's decision time, accuracy on the labelled set, and voice to voice.

    make bench-turns        (or: .venv/bin/python -m bench.turns --help)

1. Decision time of one scoring (features + Smart Turn v3.2 on one thread), in process and as
   the VAD service reports it (TurnScored.inference_ms).
2. The labelled set (tests/support/turn_samples.py: complete sentences, and the same sentences
   with a 600-900 ms pause at a phrase boundary; espeak-ng and the Piper voice) through the VAD
   service: server_vad at 500 ms of silence against semantic_vad at each scoring pause.
   "decision" is the time from the last speech sample to the turn's end, on complete samples
   whose end was recognised.
3. Unless --no-v2v: voice to voice through a whole stack (bench/voice_to_voice.py) with
   server_vad at 500 ms and with semantic_vad, the same questions in the same voice.

--through-edge instead: the labelled set through a whole stack, one WebRTC call a sample, as the
edge judges semantic pauses with the sound and the words: paused samples not cut off, and the
decision time on complete ones.

--with-words instead: each sample's first pause judged in place by the sound (the VAD service)
and the words (the LLM service's recogniser and score), by the edge's rule; with --extended, on the
extended set (more unfinished cuts, and first parts synthesised on their own), by kind of cut.

Prints median and p95 figures; docs/benchmarks.md keeps the latest.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import time

import grpc
import numpy as np

from bench.voice_to_voice import bench as voice_to_voice
from bench.voice_to_voice import figures, turn_detection
from services.edge.turn_taking import EAGERNESS
from services.vad.turn_model import SmartTurnModel
from tests.support.processes import running_stack, start_service
from tests.support.speech import resample
from tests.support.turn_samples import (
    TurnOutcome,
    TurnSample,
    detect_turn,
    judge_first_pause,
    make_samples,
    summary,
)
from tests.support.webrtc_client import RATE, RealtimeCall


def in_process_scoring(samples: list[np.ndarray], repeats: int) -> list[float]:
    model = SmartTurnModel()
    model.score(samples[0])  # warm up
    times = []
    for _ in range(repeats):
        for audio in samples:
            started = time.perf_counter()
            model.score(audio)
            times.append((time.perf_counter() - started) * 1000)
    return times


def print_summary(name: str, outcomes: list[TurnOutcome]) -> None:
    for voice in ("piper", "espeak"):
        found = summary([o for o in outcomes if o.sample.voice == voice])
        print(
            f"  {name:<24} {voice:<7} accuracy {found['accuracy']:.2f}   complete recognised "
            f"{found['complete_recognised']:>5}   paused not cut off {found['paused_not_cut_off']:>5}   "
            f"decision median {found['decision_ms_median']} ms p95 {found['decision_ms_p95']} ms"
        )


async def labelled_set(pauses: list[int]) -> None:
    samples = make_samples()
    print(f"\nScoring time, in process, one thread (n={len(samples) * 3}):")
    print(f"  {figures(in_process_scoring([s.audio[: s.speech_end + 3200] for s in samples], 3))}")
    service = start_service("services.vad")
    try:
        async with grpc.aio.insecure_channel(service.grpc_address) as channel:
            print("\nLabelled set through the VAD service (16 sentences x 2 voices, complete and paused):")
            print_summary("server_vad 500 ms", [await detect_turn(channel, s, False, 500) for s in samples])
            reported: list[float] = []
            for pause in pauses:
                outcomes = [await detect_turn(channel, s, True, pause) for s in samples]
                reported += [ms for o in outcomes for ms in o.scoring_ms]
                print_summary(f"semantic_vad pause {pause} ms", outcomes)
            print(f"\nScoring time reported by the service (TurnScored.inference_ms): {figures(reported)}")
    finally:
        service.stop()


async def v2v(url: str, turns: int, voice: str, eagerness: str) -> None:
    medians = {}
    for kind in ("server_vad", "semantic_vad"):
        detection = turn_detection(kind, 500, eagerness)
        results = await voice_to_voice(url, turns, detection, client_prefetch=1, voice=voice)
        reasons = {r: results.end_reasons.count(r) for r in sorted(set(results.end_reasons))}
        print(f"  {kind:<13} voice to voice {figures(results.latencies)}   turns ended by {reasons}")
        wait = results.stages["end_of_speech_wait"]
        print(f"  {'':<13} end_of_speech_wait {figures(wait)}")
        medians[kind] = statistics.median(results.latencies) if results.latencies else float("nan")
    change = medians["semantic_vad"] - medians["server_vad"]
    ratio = medians["semantic_vad"] / medians["server_vad"]
    print(f"\nVoice-to-voice median change, semantic_vad vs server_vad 500 ms: {change:+.0f} ms ({ratio:.2f}x)")


async def through_edge(url: str, only: str = "") -> None:
    """The labelled set through a whole stack, one call a sample (semantic_vad, eagerness auto,
    full duplex): the sound and the words as the edge joins them. A paused sample heard as two
    user turns was cut off; for complete ones, the decision time is the server's
    end_of_speech_wait (last speech sample -> end of turn), with what the words waited for: the
    held answer's recognition (llm_asr, from the pause) and their score (words_ms, from the pause).
    ``only``: the samples whose names start with it."""
    samples = [sample for sample in make_samples() if sample.name.startswith(only)]
    stages: dict[str, list[float]] = {"llm_asr": [], "words_ms": [], "sound_ms": [], "to pause": []}
    cut_off: dict[str, int] = {"piper": 0, "espeak": 0}
    decisions: dict[str, list[float]] = {"piper": [], "espeak": []}  # complete ones decided at their pause
    answered: dict[str, list[float]] = {"piper": [], "espeak": []}  # every complete one, however decided
    decided_by: dict[str, int] = {}
    for sample in samples:
        call = RealtimeCall(url)
        # Full duplex: a second half spoken over an answer to the first is heard (half duplex
        # would take it for silence), so a cut-off sample shows as two user turns.
        session = {
            "type": "realtime",
            "parley": {"mode": "full_duplex"},
            "audio": {"input": {"turn_detection": turn_detection("semantic_vad", 500, "auto")}},
        }
        try:
            await call.connect(session)
            await call.wait_for("session.created")
            call.microphone.play(resample(sample.audio, 16000, RATE))
            done = await call.wait_for("response.done", timeout=60)
            await asyncio.wait_for(call.microphone.played_out(), 60)
            await asyncio.sleep(1.0)  # a second turn (a cut-off second half) would be committed by now
        finally:
            await call.close()
        turns = len(call.of_type("input_audio_buffer.committed"))
        end = done["response"].get("parley", {}).get("end_of_turn", {})
        how = str(end.get("decided_by", end.get("reason")))
        decided_by[how] = decided_by.get(how, 0) + 1
        if not sample.complete and turns > 1:
            cut_off[sample.voice] += 1
        timings = done["response"].get("parley", {}).get("timings_ms", {})
        wait = timings.get("end_of_speech_wait")
        if sample.complete and turns == 1 and wait is not None:
            answered[sample.voice].append(wait)
        if sample.complete and turns == 1 and end.get("decided_by") not in ("longest wait", "silence"):
            if wait is not None:
                decisions[sample.voice].append(wait)
            if "llm_asr" in timings:
                stages["llm_asr"].append(timings["llm_asr"])
            for stage in ("words_ms", "sound_ms"):
                if stage in end:
                    stages[stage].append(end[stage])
            if wait is not None and "words_ms" in end and "sound_ms" in end:  # last speech -> the pause reported
                stages["to pause"].append(wait - max(end["words_ms"], end["sound_ms"]))
        kind = "complete" if sample.complete else "paused"
        print(f"  {sample.name:<10} {kind:<8} turns {turns}  {end}", flush=True)
    print("\nThrough the edge (sound and words), per voice:")
    for voice in ("piper", "espeak"):
        paused = sum(1 for sample in samples if sample.voice == voice and not sample.complete)
        complete = sum(1 for sample in samples if sample.voice == voice and sample.complete)
        if not paused + complete:
            continue
        print(
            f"  {voice:<7} paused not cut off {paused - cut_off[voice]}/{paused}   complete decided at the pause "
            f"{len(decisions[voice])}/{complete}, decision {figures(decisions[voice])}"
        )
        print(f"  {'':<7} every complete one, last speech -> end of turn {figures(answered[voice])}")
    print(f"  decided by: {decided_by}")
    for stage, values in stages.items():
        print(f"  complete ones, {stage:<9} {figures(values)}")


CUT_KINDS = ("for", "the", "that is", "and")


def cut_kind(first_part: str) -> str:
    """What leaves a first part unfinished: its last words, or another phrase boundary."""
    for kind in CUT_KINDS:
        if first_part.endswith(" " + kind):
            return kind
    return "other"


async def with_words(extended: bool, eagerness: str, only: str = "") -> None:
    samples = [sample for sample in make_samples(extended=extended) if sample.name.startswith(only)]
    vad, llm = start_service("services.vad"), start_service("services.llm")
    verdicts: list[tuple[TurnSample, str]] = []  # (sample, what its first pause did)
    try:
        async with (
            grpc.aio.insecure_channel(vad.grpc_address) as vad_channel,
            grpc.aio.insecure_channel(llm.grpc_address) as llm_channel,
        ):
            pause_ms = EAGERNESS[eagerness].pause_ms
            for sample in samples:
                outcome = await detect_turn(vad_channel, sample, True, pause_ms)
                judgement, words = await judge_first_pause(llm_channel, outcome, pause_ms, eagerness)
                # The first pause ends the turn at once, after the unsure words' shorter silence
                # (longer than every pause of the set), or at the longest wait.
                did = "at once" if judgement.decision() == "end" else "unsure wait" if judgement.unsure else "longest"
                verdicts.append((sample, did))
                sound, said = outcome.first_score, judgement.words_probability
                print(
                    f"  {sample.name:<10} {sample.kind:<13} sound {sound if sound is None else round(sound, 3)!s:<6} "
                    f"words {said if said is None else f'{said:.2g}'!s:<8} {did:<11} {words!r}",
                    flush=True,
                )
    finally:
        llm.stop()
        vad.stop()
    print(f"\nFirst pauses judged by sound and words in place (eagerness {eagerness}, {len(samples)} samples):")
    for voice in ("piper", "espeak"):
        for kind in ("complete", "paused", "paused alone"):
            found = [did for sample, did in verdicts if sample.voice == voice and sample.kind == kind]
            if found:
                counts = "   ".join(f"{how} {found.count(how):>2}" for how in ("at once", "unsure wait", "longest"))
                print(f"  {voice:<7} {kind:<13} of {len(found):>2}:   {counts}")
    print("\nPaused samples answered at the first pause (cut off), by what ends the first part:")
    for kind in (*CUT_KINDS, "other"):
        for alone in (False, True):
            found = [
                did
                for sample, did in verdicts
                if not sample.complete and sample.first_alone == alone and cut_kind(sample.first_part) == kind
            ]
            if found:
                where = "synthesised alone" if alone else "cut from the whole"
                print(f"  {kind!r:<10} {where:<19} {found.count('at once'):>2} of {len(found)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pause-ms", type=int, action="append", help="semantic scoring pauses (100 150 250)")
    parser.add_argument("--no-v2v", action="store_true", help="skip the whole-stack voice-to-voice runs")
    parser.add_argument("--url", help="a running edge for the voice-to-voice runs (default: start a stack)")
    parser.add_argument("--turns", type=int, default=12, help="questions per voice-to-voice run")
    parser.add_argument("--voice", choices=["espeak", "piper"], default="piper")
    parser.add_argument("--eagerness", choices=["low", "medium", "high", "auto"], default="auto")
    parser.add_argument(
        "--through-edge", action="store_true", help="only the labelled set through a whole stack (sound and words)"
    )
    parser.add_argument("--only", default="", help="the samples whose names start with this")
    parser.add_argument("--with-words", action="store_true", help="only the first pauses judged in place, with words")
    parser.add_argument("--extended", action="store_true", help="--with-words: on the extended labelled set")
    args = parser.parse_args()
    if args.through_edge:
        with contextlib.ExitStack() as stack:
            url = args.url or stack.enter_context(running_stack())["edge"].url
            asyncio.run(through_edge(url, args.only))
        return
    if args.with_words:
        asyncio.run(with_words(args.extended, args.eagerness, args.only))
        return
    asyncio.run(labelled_set(args.pause_ms or [100, 150, 250]))
    if args.no_v2v:
        return
    print(f"\nVoice to voice, {args.voice} voice, {args.turns} questions each:")
    with contextlib.ExitStack() as stack:
        url = args.url or stack.enter_context(running_stack())["edge"].url
        asyncio.run(v2v(url, args.turns, args.voice, args.eagerness))


if __name__ == "__main__":
    main()
