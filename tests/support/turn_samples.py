"""A labelled end-of-turn set made at test time with espeak-ng and the bundled Piper voice.

Each sentence gives two samples: "complete" (the sentence, then silence) and "paused" (the same
recording cut at a phrase boundary, a 600-900 ms pause, then the rest, then silence). The paused
sample is cut out of the whole sentence's recording, not synthesised in two halves, so its first
half keeps the voice's mid-sentence intonation instead of a sentence-final fall.
"""

from __future__ import annotations

from dataclasses import dataclass

import grpc
import numpy as np
from parley.v1 import vad_pb2

from tests.support.speech import VOICES
from tests.support.vad_client import detect

RATE = 16000
LEAD_SILENCE_S = 0.3
TRAIL_SILENCE_S = 3.0
NOISE_RMS = 0.0005  # a quiet room, not digital silence

# (first part, rest): the cut falls between them, at a point where a person might pause.
SENTENCES: list[tuple[str, str]] = [
    ("I'd like to book a table for", "two people tonight."),
    ("What is the capital of", "France?"),
    ("Can you tell me how", "to get to the station?"),
    ("My favourite colour is", "blue."),
    ("Please remind me to call", "my mother tomorrow."),
    ("How far is it from here to", "the nearest airport?"),
    ("I think we should", "leave before it rains."),
    ("The meeting is scheduled for", "next Tuesday morning."),
    ("Could you explain why the sky", "is blue?"),
    ("Could you set an alarm for", "seven thirty?"),
    ("I need to buy some", "milk and bread."),
    ("Tell me a joke about", "penguins."),
    ("What's the weather like in", "London today?"),
    ("I'm looking for a restaurant that", "serves Italian food."),
    ("Can you play some music by", "the Beatles?"),
    ("How many people live in", "Tokyo?"),
]


@dataclass(frozen=True)
class TurnSample:
    name: str
    voice: str  # "espeak" or "piper"
    complete: bool  # False: a pause in the middle that is not the end of the turn
    audio: np.ndarray  # 16 kHz float32
    speech_end: int  # last voiced sample of the utterance
    pause: tuple[int, int] | None  # (first silent sample, first sample of the rest) for paused samples


def phrase_cut(whole: np.ndarray, first_alone: np.ndarray) -> int:
    """Where the first part ends inside the whole sentence's recording: the quietest 20 ms
    near the first part's own length (said alone it ends a little later, with a final fall)."""
    frame = RATE // 100
    low = max(frame, len(first_alone) - RATE * 3 // 10)
    high = min(len(whole) - 3 * frame, len(first_alone) + RATE // 10)
    energy = [float(np.mean(whole[i : i + 2 * frame] ** 2)) for i in range(low, high, frame)]
    return low + int(np.argmin(energy)) * frame + frame


def _silence(seconds: float) -> np.ndarray:
    return np.zeros(int(RATE * seconds), np.float32)


def make_samples(voices: tuple[str, ...] = ("piper", "espeak"), seed: int = 7) -> list[TurnSample]:
    rng = np.random.default_rng(seed)
    samples = []
    for voice_name in voices:
        say = VOICES[voice_name]
        for index, (first, rest) in enumerate(SENTENCES):
            name = f"{voice_name}-{index:02d}"
            whole = say(f"{first} {rest}")
            lead = _silence(LEAD_SILENCE_S)
            audio = np.concatenate((lead, whole, _silence(TRAIL_SILENCE_S)))
            samples.append(TurnSample(name, voice_name, True, _noisy(audio, rng), len(lead) + len(whole), None))
            cut = phrase_cut(whole, say(first))
            pause = _silence(rng.uniform(0.6, 0.9))
            audio = np.concatenate((lead, whole[:cut], pause, whole[cut:], _silence(TRAIL_SILENCE_S)))
            pause_span = (len(lead) + cut, len(lead) + cut + len(pause))
            end = len(lead) + len(whole) + len(pause)
            samples.append(TurnSample(name, voice_name, False, _noisy(audio, rng), end, pause_span))
    return samples


def _noisy(audio: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return (audio + rng.standard_normal(len(audio)).astype(np.float32) * NOISE_RMS).astype(np.float32)


@dataclass(frozen=True)
class TurnOutcome:
    """Where one sample's turn was judged over by one detection mode."""

    sample: TurnSample
    ended_at: int | None  # samples of audio analysed when the turn was first judged over
    reason: str  # semantic: complete | max_wait | stream_end; server_vad: silence
    first_score: float | None  # the turn model's score of the first pause (semantic)
    scoring_ms: tuple[float, ...]  # time of each scoring

    @property
    def premature(self) -> bool:
        """Judged over before the last word was spoken: the user would be cut off."""
        return self.ended_at is None or self.ended_at < self.sample.speech_end

    @property
    def latency_ms(self) -> float | None:
        """From the last speech sample to the decision."""
        return None if self.ended_at is None else (self.ended_at - self.sample.speech_end) * 1000 / RATE

    @property
    def correct(self) -> bool:
        """A paused sample is right if the pause did not end the turn; a complete one if its
        end was recognised (not merely waited out)."""
        if self.sample.complete:
            return not self.premature and self.reason in ("complete", "silence")
        return not self.premature


async def detect_turn(channel: grpc.aio.Channel, sample: TurnSample, semantic: bool, pause_ms: int) -> TurnOutcome:
    """Stream ``sample`` through the VAD service; semantic end of turn or plain silence of ``pause_ms``."""
    options: dict[str, object] = {"min_silence_ms": pause_ms, "speech_pad_ms": 300}
    if semantic:
        options["turn_detection"] = vad_pb2.TurnDetectionConfig()
    responses = await detect(channel, sample.audio, RATE, chunk_ms=32, **options)
    scores = [r.turn_scored for r in responses if r.WhichOneof("event") == "turn_scored"]
    end_kind = "turn_ended" if semantic else "speech_ended"
    ends = [r for r in responses if r.WhichOneof("event") == end_kind]
    if not ends:
        return TurnOutcome(sample, None, "none", None, ())
    first = ends[0]
    if semantic:
        reason = vad_pb2.TurnEndReason.Name(first.turn_ended.reason).removeprefix("TURN_END_REASON_").lower()
    else:
        reason = "silence"
    return TurnOutcome(
        sample,
        first.processed_samples,
        reason,
        scores[0].probability if scores else None,
        tuple(s.inference_ms for s in scores),
    )


def summary(outcomes: list[TurnOutcome]) -> dict[str, object]:
    """Accuracy and decision times of one mode over the labelled set."""
    complete = [o for o in outcomes if o.sample.complete]
    paused = [o for o in outcomes if not o.sample.complete]
    latencies = sorted(o.latency_ms for o in complete if o.correct and o.latency_ms is not None)
    return {
        "accuracy": round(sum(o.correct for o in outcomes) / len(outcomes), 3),
        "complete_recognised": f"{sum(o.correct for o in complete)}/{len(complete)}",
        "paused_not_cut_off": f"{sum(o.correct for o in paused)}/{len(paused)}",
        "cut_offs": sum(o.premature for o in outcomes),
        "decision_ms_median": round(float(np.median(latencies)), 1) if latencies else None,
        "decision_ms_p95": round(float(np.percentile(latencies, 95)), 1) if latencies else None,
    }
