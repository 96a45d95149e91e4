"""The VAD service finds speech where it is, and none in silence or noise.

Speech is made at test time with espeak-ng, trimmed to its voiced part, and placed between known
silences, so the true boundaries are known to the sample.
"""

import asyncio

import grpc
import numpy as np
import pytest

from tests.support import speech
from tests.support.vad_client import detect, segments

RATE = 16000
TOLERANCE_MS = 150
PAD_MS = 30
SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "Please book a table for two at eight tonight.",
    "What is the weather like in Paris tomorrow?",
]


@pytest.fixture(scope="module")
def utterances() -> list[np.ndarray]:
    return [speech.trim(speech.speak(text, RATE), RATE) for text in SENTENCES]


def assert_matches(found: list[tuple[int, int]], truth: list[speech.Utterance], rate: int = RATE) -> None:
    """Each true utterance is found once, both edges within the tolerance (padding removed)."""
    assert len(found) == len(truth), f"found {found}, expected {truth}"
    pad = rate * PAD_MS // 1000
    tolerance = rate * TOLERANCE_MS // 1000
    for (start, end), true in zip(found, truth, strict=True):
        assert abs(start + pad - true.start) <= tolerance, f"start {start + pad} vs true {true.start}"
        assert abs(end - pad - true.end) <= tolerance, f"end {end - pad} vs true {true.end}"


def noisy(audio: np.ndarray, speech_rms: float, snr_db: float, seed: int, kind: str) -> np.ndarray:
    noise_rms = speech_rms / 10 ** (snr_db / 20)
    make = speech.white_noise if kind == "white" else speech.pink_noise
    return audio + make(len(audio), noise_rms, seed)


async def test_segments_match_known_speech_boundaries(vad_channel: grpc.aio.Channel, utterances) -> None:
    audio, truth = speech.compose([1.0, utterances[0], 1.5, utterances[1], 0.8, utterances[2], 1.0], RATE)
    responses = await detect(vad_channel, audio, min_silence_ms=300, speech_pad_ms=PAD_MS)
    assert_matches(segments(responses), truth)
    # Every ended segment was announced by a speech_started with the same start, in order.
    kinds = [r.WhichOneof("event") for r in responses]
    assert kinds[0] == "ready"
    assert kinds[1:] == ["speech_started", "speech_ended"] * 3
    starts = [r.speech_started.start_offset_samples for r in responses if r.HasField("speech_started")]
    assert starts == [start for start, _ in segments(responses)]


@pytest.mark.parametrize(("kind", "snr_db"), [("white", 20), ("pink", 15)])
async def test_segments_match_with_background_noise(vad_channel, utterances, kind: str, snr_db: float) -> None:
    clean, truth = speech.compose([1.2, utterances[1], 1.4, utterances[2], 1.0], RATE)
    audio = noisy(clean, speech.rms_of(utterances[1]), snr_db, seed=7, kind=kind)
    assert_matches(segments(await detect(vad_channel, audio, min_silence_ms=300, speech_pad_ms=PAD_MS)), truth)


async def test_8khz_streams_are_segmented_too(vad_channel, utterances) -> None:
    clean, truth = speech.compose([1.0, utterances[0], 1.0], RATE)
    audio_8k = speech.resample(clean, RATE, 8000)
    truth_8k = [speech.Utterance(u.start // 2, u.end // 2) for u in truth]
    found = segments(await detect(vad_channel, audio_8k, sample_rate=8000, min_silence_ms=300, speech_pad_ms=PAD_MS))
    assert_matches(found, truth_8k, rate=8000)


@pytest.mark.parametrize(
    "make_audio",
    [
        pytest.param(lambda: np.zeros(RATE * 5, np.float32), id="silence"),
        pytest.param(lambda: speech.white_noise(RATE * 5, 0.05, seed=1), id="white-noise"),
        pytest.param(lambda: speech.pink_noise(RATE * 5, 0.1, seed=2), id="pink-noise"),
        pytest.param(lambda: speech.white_noise(RATE * 5, 0.3, seed=3), id="loud-white-noise"),
    ],
)
async def test_silence_and_noise_yield_no_speech(vad_channel, make_audio) -> None:
    responses = await detect(vad_channel, make_audio(), emit_probabilities=True)
    assert [r.WhichOneof("event") for r in responses if r.WhichOneof("event") != "probabilities"] == ["ready"]
    probabilities = [p for r in responses if r.HasField("probabilities") for p in r.probabilities.probabilities]
    assert len(probabilities) == RATE * 5 // 512
    assert max(probabilities) < 0.5


async def test_probabilities_cover_every_window_in_order(vad_channel, utterances) -> None:
    audio, _ = speech.compose([0.5, utterances[0], 0.5], RATE)
    responses = await detect(vad_channel, audio, chunk_ms=100, emit_probabilities=True)
    batches = [r.probabilities for r in responses if r.HasField("probabilities")]
    offsets = [b.offset_samples for b in batches]
    counts = [len(b.probabilities) for b in batches]
    assert offsets == list(np.cumsum([0, *counts[:-1]]) * 512)
    assert sum(counts) == len(audio) // 512
    assert max(p for b in batches for p in b.probabilities) > 0.9
    # Each chunk's probabilities come after the events it caused: their processed_samples is
    # progress (nothing more will be said of the audio before it), which the edge relies on.
    heard = 0
    for response in responses[1:]:
        assert response.processed_samples >= heard, "no event is about audio already reported as heard"
        if response.HasField("probabilities"):
            heard = response.processed_samples
            assert heard == response.probabilities.offset_samples + 512 * len(response.probabilities.probabilities)
    assert {"speech_started", "speech_ended"} <= {r.WhichOneof("event") for r in responses}


async def test_32_concurrent_streams_get_their_own_events(vad_channel, utterances) -> None:
    """Each stream has its own arrangement, so events that leaked between streams would not match."""
    arrangements = []
    for index in range(32):
        lead = 0.4 + 0.05 * index
        first, second = utterances[index % 3], utterances[(index + 1) % 3]
        parts = [lead, first, 1.0, second, 0.6] if index % 2 else [lead, first, 0.8]
        arrangements.append(speech.compose(parts, RATE))

    async def one_stream(audio: np.ndarray) -> list[tuple[int, int]]:
        return segments(await detect(vad_channel, audio, chunk_ms=64, min_silence_ms=300, speech_pad_ms=PAD_MS))

    results = await asyncio.gather(*(one_stream(audio) for audio, _ in arrangements))
    for found, (_, truth) in zip(results, arrangements, strict=True):
        assert_matches(found, truth)


async def test_chunks_of_any_size_give_the_same_segments(vad_channel, utterances) -> None:
    audio, truth = speech.compose([0.7, utterances[2], 0.9], RATE)
    results = [
        segments(await detect(vad_channel, audio, chunk_ms=chunk_ms, min_silence_ms=300, speech_pad_ms=PAD_MS))
        for chunk_ms in (10, 32, 250, 2000)
    ]
    assert all(result == results[0] for result in results), results
    assert_matches(results[0], truth)
