"""A labelled end-of-turn set made at test time with espeak-ng and the bundled Piper voice.

Each sentence gives two samples: "complete" (the sentence, then silence) and "paused" (the same
recording cut at a phrase boundary, a 600-900 ms pause, then the rest, then silence). The paused
sample is cut out of the whole sentence's recording, not synthesised in two halves, so its first
half keeps the voice's mid-sentence intonation instead of a sentence-final fall.

The extended set (``make_samples(extended=True)``) adds sentences cut where the words are
clearly unfinished (after "for", "the", "that is", "and", a verb without its object) and, for
every sentence, a third sample whose first part is synthesised on its own: a sentence-final fall
before the pause, as a person stopping to think says it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import grpc
import numpy as np
from parley.v1 import conversation_pb2, conversation_pb2_grpc, vad_pb2

from services.common.words import bare_words
from services.edge.turn_taking import WORDS, PauseJudgement
from tests.support import speech
from tests.support.llm_client import END, audio_chunks, header, respond
from tests.support.speech import VOICES
from tests.support.vad_client import detect

RATE = 16000
LEAD_SILENCE_S = 0.3
TRAIL_SILENCE_S = 3.0
NOISE_RMS = 0.0005  # a quiet room, not digital silence

# The WebRTC turn test's sentence (tests/integration/test_edge_turns.py), Piper text and pauses
# in seconds: one pause, after "maybe", where the speaker is not done.
PAUSED_AFTER_MAYBE = ("I was thinking that maybe", 1.0, "you could tell me the capital of France.", 2.5)


def piper_said(*parts: str | float, rate: int = RATE) -> np.ndarray:
    """The bundled Piper voice at ``rate`` after 0.2 s of silence; floats are pauses in seconds."""
    audio = [np.zeros(rate // 5, np.float32)]
    for part in parts:
        if isinstance(part, str):
            voice = speech.piper_voice(part)
            audio.append(voice if rate == RATE else speech.resample(voice, RATE, rate))
        else:
            audio.append(np.zeros(int(rate * part), np.float32))
    return np.concatenate(audio)


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
# The extended set's further sentences, by what leaves the first part unfinished.
MORE_SENTENCES: list[tuple[str, str]] = [
    ("Can you find me a flight for", "next Friday?"),  # for
    ("I'm waiting for", "the bus to arrive."),
    ("Please turn off the", "lights in the kitchen."),  # the
    ("What time does the", "last train leave?"),
    ("Send a message to the", "whole team."),
    ("I want a hotel that is", "close to the beach."),  # that is
    ("Find me a laptop that is", "light and cheap."),
    ("I need eggs and", "butter for the cake."),  # and
    ("Call my sister and", "tell her I'm late."),
    ("Could you please bring", "me a glass of water?"),  # a verb without its object
    ("I would like to order", "a large pizza."),
    ("Can you recommend", "a good book?"),
    ("Remind me to buy", "some flowers."),
]


@dataclass(frozen=True)
class TurnSample:
    name: str
    voice: str  # "espeak" or "piper"
    complete: bool  # False: a pause in the middle that is not the end of the turn
    audio: np.ndarray  # 16 kHz float32
    speech_end: int  # last voiced sample of the utterance
    pause: tuple[int, int] | None  # (first silent sample, first sample of the rest) for paused samples
    first_alone: bool = False  # paused: its first part synthesised on its own (a sentence-final fall)
    first_part: str = ""  # the words before the pause (paused samples)

    @property
    def kind(self) -> str:
        return "complete" if self.complete else "paused alone" if self.first_alone else "paused"


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


def make_samples(
    voices: tuple[str, ...] = ("piper", "espeak"), seed: int = 7, extended: bool = False
) -> list[TurnSample]:
    rng = np.random.default_rng(seed)
    samples = []
    sentences = [*SENTENCES, *MORE_SENTENCES] if extended else SENTENCES
    for voice_name in voices:
        say = VOICES[voice_name]
        for index, (first, rest) in enumerate(sentences):
            name = f"{voice_name}-{index:02d}"
            whole = say(f"{first} {rest}")
            lead = _silence(LEAD_SILENCE_S)
            audio = np.concatenate((lead, whole, _silence(TRAIL_SILENCE_S)))
            samples.append(TurnSample(name, voice_name, True, _noisy(audio, rng), len(lead) + len(whole), None))
            first_alone = say(first)
            cut = phrase_cut(whole, first_alone)
            parts = [(whole[:cut], whole[cut:], False)]
            if extended:
                parts.append((speech.trim(first_alone, RATE), speech.trim(say(rest), RATE), True))
            for before, after, alone in parts:
                pause = _silence(rng.uniform(0.6, 0.9))
                audio = np.concatenate((lead, before, pause, after, _silence(TRAIL_SILENCE_S)))
                pause_span = (len(lead) + len(before), len(lead) + len(before) + len(pause))
                end = pause_span[1] + len(after)
                paused = TurnSample(name, voice_name, False, _noisy(audio, rng), end, pause_span, alone, first)
                samples.append(paused)
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


async def words_score(llm_channel: grpc.aio.Channel, audio: np.ndarray) -> tuple[str, float | None]:
    """What the edge's held answer knows at a pause: the recogniser's transcript of the audio so
    far and its score, its closing punctuation stripped, by the LLM service (None: no words)."""
    session = f"turns-{uuid.uuid4().hex[:8]}"
    heard = await respond(llm_channel, [header(session, transcribe_only=True), *audio_chunks(audio), END])
    stub = conversation_pb2_grpc.ConversationServiceStub(llm_channel)
    await stub.EndSession(conversation_pb2.EndSessionRequest(session_id=session))
    words = bare_words(heard.transcript or "")
    if not words:
        return "", None
    return words, (await stub.ScoreEndOfTurn(conversation_pb2.ScoreEndOfTurnRequest(transcript=words))).probability


async def judge_first_pause(
    llm_channel: grpc.aio.Channel, outcome: TurnOutcome, pause_ms: int, eagerness: str = "auto"
) -> tuple[PauseJudgement, str]:
    """A sample's first pause as the edge judges it with the words, and the words heard: the
    sound's score from the VAD service (``outcome``), the words' of the audio up to the pause's report."""
    sample = outcome.sample
    first_pause = sample.pause[0] if sample.pause else sample.speech_end
    judgement = PauseJudgement(WORDS[eagerness], sound_threshold=0.5)
    judgement.sound_probability = outcome.first_score
    words, probability = await words_score(llm_channel, sample.audio[: first_pause + RATE * pause_ms // 1000])
    judgement.words_scored(probability, 0.0)
    return judgement, words


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
