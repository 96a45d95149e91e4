"""Semantic end of turn in the VAD service, with the real Smart Turn model.

The labelled set (tests/support/turn_samples.py) is made at test time with espeak-ng and the
bundled Piper voice. Its figures are written to artifacts/turns/labelled_set.json.
"""

import json
from collections.abc import AsyncIterator, Iterator

import grpc
import numpy as np
import pytest
from parley.v1 import vad_pb2, vad_pb2_grpc

from services.vad.turn_model import SmartTurnModel, log_mel_features
from tests.support import speech
from tests.support.calls import stream_until_error
from tests.support.processes import REPO_ROOT, ServiceProcess, start_service
from tests.support.speech import piper_voice
from tests.support.turn_samples import (
    PAUSED_AFTER_MAYBE,
    RATE,
    TurnOutcome,
    TurnSample,
    detect_turn,
    judge_first_pause,
    make_samples,
    phrase_cut,
    piper_said,
    summary,
)
from tests.support.vad_client import config_request, detect, segments

SEMANTIC_PAUSE_MS = 150  # the edge's semantic_vad (eagerness auto)
SILENCE_MS = 500  # the edge's server_vad
DEFAULT_MAX_WAIT_MS = 2000


@pytest.fixture(scope="module")
def labelled_set() -> list[TurnSample]:
    return make_samples()


@pytest.fixture(scope="module")
def model() -> SmartTurnModel:
    return SmartTurnModel()


@pytest.fixture(scope="module")
async def outcomes(
    vad_service: ServiceProcess, labelled_set: list[TurnSample]
) -> AsyncIterator[dict[str, list[TurnOutcome]]]:
    async with grpc.aio.insecure_channel(vad_service.grpc_address) as channel:
        results = {
            "semantic_vad": [await detect_turn(channel, s, True, SEMANTIC_PAUSE_MS) for s in labelled_set],
            "server_vad_500": [await detect_turn(channel, s, False, SILENCE_MS) for s in labelled_set],
        }
    report = {
        mode: {"all": summary(found)}
        | {voice: summary([o for o in found if o.sample.voice == voice]) for voice in ("piper", "espeak")}
        for mode, found in results.items()
    }
    folder = REPO_ROOT / "artifacts" / "turns"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "labelled_set.json").write_text(json.dumps(report, indent=2))
    yield results


def unfinished_with_end_padding(model: SmartTurnModel, audio: np.ndarray) -> float:
    """The score with the window padded on the wrong side (the audio at the start)."""
    window = np.pad(audio[-128000:], (0, 128000 - len(audio[-128000:])))
    (output,) = model._session.run(None, {model._input: log_mel_features(window)[None]})
    return float(output[0, 0])


def with_silence(audio: np.ndarray, before_s: float = 0.3, after_s: float = 0.2) -> np.ndarray:
    return np.concatenate(
        (np.zeros(int(RATE * before_s), np.float32), audio, np.zeros(int(RATE * after_s), np.float32))
    )


def test_preprocessing_tells_clearly_finished_from_clearly_cut_off_speech(model: SmartTurnModel) -> None:
    finished = [piper_voice(t) for t in ("What is the capital of France?", "Please remind me to call my mother.")]
    cut_off = [piper_voice(t) for t in ("Um, so, I was thinking that maybe", "Well, the thing is, um,")]
    whole = piper_voice("What's the weather like in London today?")
    cut_off.append(whole[: phrase_cut(whole, piper_voice("What's the weather like in"))])
    finished_scores = [model.score(with_silence(a)) for a in finished]
    cut_off_scores = [model.score(with_silence(a)) for a in cut_off]
    assert min(finished_scores) > 0.8, finished_scores
    assert max(cut_off_scores) < 0.3, cut_off_scores
    # The window padded at the other end (a common mistake) calls the cut-off sentence finished.
    assert unfinished_with_end_padding(model, with_silence(cut_off[-1])) > 0.5


def test_complete_samples_judged_finished_end_their_turn_within_400_ms(
    outcomes: dict[str, list[TurnOutcome]],
) -> None:
    judged_finished = [o for o in outcomes["semantic_vad"] if o.sample.complete and o.reason == "complete"]
    # Most of the Piper voice's sentences are recognised as finished (the figures are in the report).
    assert sum(o.sample.voice == "piper" for o in judged_finished) >= 12
    for outcome in judged_finished:
        assert outcome.latency_ms is not None and 0 <= outcome.latency_ms <= 400, outcome


def test_a_pause_judged_unfinished_is_not_answered_before_the_rest_of_the_sentence(
    outcomes: dict[str, list[TurnOutcome]],
) -> None:
    waited = [o for o in outcomes["semantic_vad"] if not o.sample.complete and (o.first_score or 1) < 0.5]
    assert waited, "no pause of the labelled set was judged unfinished"
    for outcome in waited:
        assert not outcome.premature, outcome


def test_every_turn_ends_within_the_longest_wait(outcomes: dict[str, list[TurnOutcome]]) -> None:
    for outcome in outcomes["semantic_vad"]:
        assert outcome.latency_ms is not None and outcome.latency_ms <= DEFAULT_MAX_WAIT_MS + 400, outcome


def test_semantic_turns_cut_off_no_more_often_than_500_ms_of_silence(
    outcomes: dict[str, list[TurnOutcome]],
) -> None:
    semantic = sum(o.premature for o in outcomes["semantic_vad"])
    silence = sum(o.premature for o in outcomes["server_vad_500"])
    # 500 ms of silence cuts every paused sample (their pauses are 600-900 ms) and nothing else.
    assert silence == sum(not o.sample.complete for o in outcomes["server_vad_500"])
    assert semantic <= silence


@pytest.fixture(scope="module")
async def fused(
    llm_service: ServiceProcess, outcomes: dict[str, list[TurnOutcome]]
) -> dict[str, list[tuple[TurnOutcome, str]]]:
    """Each sample's first pause as the edge judges it with the words (``PauseJudgement``): the
    sound's verdict from the VAD service, the words' from the LLM service."""
    decisions: dict[str, list[tuple[TurnOutcome, str]]] = {"piper": [], "espeak": []}
    details: list[dict[str, object]] = []
    async with grpc.aio.insecure_channel(llm_service.grpc_address) as channel:
        for outcome in outcomes["semantic_vad"]:
            sample = outcome.sample
            judgement, _ = await judge_first_pause(channel, outcome, SEMANTIC_PAUSE_MS)  # eagerness auto
            decisions[sample.voice].append((outcome, judgement.decision()))
            details.append(
                {
                    "sample": sample.name,
                    "voice": sample.voice,
                    "complete": sample.complete,
                    "sound": outcome.first_score,
                    "words": judgement.words_probability,
                    "decision": judgement.decision(),
                }
            )
    report = {
        voice: {
            "paused_answered_at_the_pause": sum(d == "end" for o, d in found if not o.sample.complete),
            "paused_answered_at_the_pause_by_sound_alone": sum(
                (o.first_score or 0) >= 0.5 for o, _ in found if not o.sample.complete
            ),
            "complete_answered_at_once": sum(d == "end" for o, d in found if o.sample.complete),
            "complete_answered_at_once_by_sound_alone": sum(
                (o.first_score or 0) >= 0.5 for o, _ in found if o.sample.complete
            ),
            "of_each": sum(o.sample.complete for o, _ in found),
        }
        for voice, found in decisions.items()
    }
    folder = REPO_ROOT / "artifacts" / "turns"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "with_words.json").write_text(json.dumps({"summary": report, "pauses": details}, indent=2))
    return decisions


def test_with_the_words_paused_samples_wait_for_their_second_half(
    fused: dict[str, list[tuple[TurnOutcome, str]]],
) -> None:
    """The sound alone (Smart Turn v3.2) calls 12-13 of the 16 mid-sentence pauses per voice
    finished; with the words ("I'd like to book a table for") 0 and 2 were answered there when
    the thresholds were set (docs/benchmarks.md). One more is allowed: the language model's bf16
    kernels move its scores with the CPU."""
    for voice, found in fused.items():
        answered = [o.sample.name for o, decision in found if not o.sample.complete and decision == "end"]
        assert len(answered) <= 3, (voice, answered)


def test_with_the_words_most_finished_sentences_are_still_answered_at_once(
    fused: dict[str, list[tuple[TurnOutcome, str]]],
) -> None:
    """The rule holds some finished sentences too (the sound not sure, the words not sure); those
    wait for the longest wait. At least half are answered at the pause (13 and 10 of 16 when the
    thresholds were set; the sound alone: 15 and 8)."""
    for voice, found in fused.items():
        at_once = [o for o, decision in found if o.sample.complete and decision == "end"]
        assert len(at_once) >= 8, (voice, [o.sample.name for o, d in found if o.sample.complete and d != "end"])


async def test_without_turn_detection_the_speech_events_are_unchanged(
    vad_channel: grpc.aio.Channel, labelled_set: list[TurnSample]
) -> None:
    for sample in labelled_set[:4]:
        plain = await detect(vad_channel, sample.audio, min_silence_ms=300)
        semantic = await detect(
            vad_channel, sample.audio, min_silence_ms=300, turn_detection=vad_pb2.TurnDetectionConfig()
        )
        speech_events = [r for r in semantic if r.WhichOneof("event") in ("ready", "speech_started", "speech_ended")]
        assert {r.WhichOneof("event") for r in plain} <= {"ready", "speech_started", "speech_ended"}
        assert segments(plain) == segments(semantic)
        assert [r.WhichOneof("event") for r in plain[1:]] == [r.WhichOneof("event") for r in speech_events[1:]]
        assert any(r.WhichOneof("event") == "turn_ended" for r in semantic)


async def test_a_turn_longer_than_8_seconds_is_scored_on_its_last_8(vad_channel: grpc.aio.Channel) -> None:
    sentences = [
        piper_voice(t)
        for t in (
            "I went to the market this morning and bought apples,",
            "pears, oranges, bananas and a very large watermelon,",
            "then I walked home along the river and met an old friend.",
        )
    ]
    audio = with_silence(np.concatenate(sentences), after_s=3.0)
    assert len(audio) > 9 * RATE
    # A threshold no pause reaches keeps the turn open across the sentences' pauses.
    turn = vad_pb2.TurnDetectionConfig(completion_threshold=0.999, max_wait_ms=2000)
    responses = await detect(vad_channel, audio, min_silence_ms=150, turn_detection=turn)
    scored = [r.turn_scored for r in responses if r.WhichOneof("event") == "turn_scored"]
    ended = [r.turn_ended for r in responses if r.WhichOneof("event") == "turn_ended"]
    assert len(ended) == 1 and ended[0].reason == vad_pb2.TURN_END_REASON_MAX_WAIT
    assert ended[-1].end_offset_samples - ended[-1].start_offset_samples > 8 * RATE, ended
    assert scored[-1].audio_ms == 8000


async def test_the_webrtc_tests_paused_sentence_is_held_at_every_window_phase(vad_channel: grpc.aio.Channel) -> None:
    """The sentence test_edge_turns.py pauses after "maybe" reaches the VAD over a call, at a
    phase against its 512-sample windows that moves from run to run (when the microphone starts
    it): its one pause must be scored unfinished at every phase, or that test tosses a coin.
    Fails for "Um, so, ..." before it: the sound alone calls the pause after "Um," finished at
    most phases."""
    audio = piper_said(*PAUSED_AFTER_MAYBE)
    second_half = len(piper_said(*PAUSED_AFTER_MAYBE[:2]))  # the lead, the first half and the pause
    turn = vad_pb2.TurnDetectionConfig(completion_threshold=0.5, max_wait_ms=DEFAULT_MAX_WAIT_MS)
    for shift in range(0, 512, 32):
        responses = await detect(
            vad_channel,
            np.concatenate((np.zeros(shift, np.float32), audio)),
            min_silence_ms=SEMANTIC_PAUSE_MS,
            speech_pad_ms=300,
            turn_detection=turn,
        )
        scores = [r.turn_scored.probability for r in responses if r.WhichOneof("event") == "turn_scored"]
        ended = [r.turn_ended for r in responses if r.WhichOneof("event") == "turn_ended"]
        assert len(scores) == 2 and scores[0] < 0.5, (shift, scores)
        assert ended and ended[0].end_offset_samples > shift + second_half, (shift, ended)


async def test_a_very_short_utterance_gets_a_decision(vad_channel: grpc.aio.Channel) -> None:
    audio = with_silence(piper_voice("Yes."), after_s=3.0)
    responses = await detect(vad_channel, audio, min_silence_ms=150, turn_detection=vad_pb2.TurnDetectionConfig())
    scored = [r.turn_scored for r in responses if r.WhichOneof("event") == "turn_scored"]
    ended = [r.turn_ended for r in responses if r.WhichOneof("event") == "turn_ended"]
    assert len(scored) == 1 and scored[0].audio_ms < 1500 and 0 <= scored[0].probability <= 1
    assert len(ended) == 1 and ended[0].scorings == 1


async def test_noise_alone_opens_no_turn(vad_channel: grpc.aio.Channel) -> None:
    noise = speech.pink_noise(5 * RATE, rms=0.02, seed=11)
    responses = await detect(vad_channel, noise, turn_detection=vad_pb2.TurnDetectionConfig())
    assert [r.WhichOneof("event") for r in responses] == ["ready"]


@pytest.fixture(scope="module")
def vad_without_turn_model() -> Iterator[ServiceProcess]:
    service = start_service("services.vad", "--no-turn-detection")
    yield service
    assert service.stop() == 0


async def test_a_server_without_the_turn_model_refuses_turn_detection_clearly(
    vad_without_turn_model: ServiceProcess,
) -> None:
    async with grpc.aio.insecure_channel(vad_without_turn_model.grpc_address) as channel:
        stub = vad_pb2_grpc.VoiceActivityServiceStub(channel)
        error = await stream_until_error(
            stub.Detect, [config_request(RATE, turn_detection=vad_pb2.TurnDetectionConfig())]
        )
        assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "without the turn model" in (error.details() or "")
        plain = await detect(channel, with_silence(piper_voice("Hello there."), after_s=1.0))
        assert len(segments(plain)) == 1  # plain detection still works
