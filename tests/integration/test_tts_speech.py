"""What the TTS service says can be understood: a round trip through the bundled Whisper, and the
audio is at the requested rate, not silent, and as long as the text needs."""

import itertools

import grpc
import numpy as np
import pytest

from tests.support.transcribe import Transcriber, spoken_words, word_errors
from tests.support.tts_client import synthesize

# Text as a language model writes it → what a listener should hear.
ROUND_TRIP = {
    "The meeting starts on March 15, 2024.": "the meeting starts on march fifteenth twenty twenty four",
    "3 + 4 = 7.": "three plus four equals seven",
    "Dr. Smith lives at 42 Baker Street.": "doctor smith lives at forty two baker street",
    "The ticket costs $25.": "the ticket costs twenty five dollars",
    "About 80% of the students passed.": "about eighty percent of the students passed",
    "She finished 1st in the race.": "she finished first in the race",
    "The bridge is 3 km long.": "the bridge is three kilometers long",
    "We sold 1,250 books last year.": "we sold one thousand two hundred fifty books last year",
    "Bring some fruit, e.g. apples and grapes.": "bring some fruit for example apples and grapes",
    "The train leaves in 10 minutes.": "the train leaves in ten minutes",
    "It was a cold and quiet morning in the mountains.": "it was a cold and quiet morning in the mountains",
    "Mr. Jones bought 12 eggs and 2 loaves of bread.": "mister jones bought twelve eggs and two loaves of bread",
}
MAX_WER = 0.10


@pytest.fixture(scope="module")
def transcriber() -> Transcriber:
    return Transcriber()


async def test_round_trip_through_whisper_has_a_low_word_error_rate(
    tts_channel: grpc.aio.Channel, transcriber: Transcriber
) -> None:
    errors, words, report = 0, 0, []
    for text, expected in ROUND_TRIP.items():
        synthesis = await synthesize(tts_channel, text, sample_rate=16000)
        heard = transcriber.transcribe(synthesis.audio, 16000)
        reference = expected.split()
        sentence_errors = word_errors(reference, spoken_words(heard))
        errors += sentence_errors
        words += len(reference)
        report.append(f"{sentence_errors} {text!r} -> {heard!r}")
    assert errors / words <= MAX_WER, "\n".join(report)


def level_db(samples: np.ndarray) -> float:
    return 20 * np.log10(np.sqrt(np.mean(samples.astype(np.float64) ** 2)) + 1e-12)


@pytest.mark.parametrize("rate", [16000, 22050, 24000, 48000])
async def test_audio_is_at_the_requested_rate_not_silent_and_of_plausible_length(
    tts_channel: grpc.aio.Channel, rate: int
) -> None:
    text = "The quick brown fox jumps over the lazy dog. Then it runs back home, tired but happy."
    synthesis = await synthesize(tts_channel, text, sample_rate=rate)
    assert {chunk.sample_rate for chunk in synthesis.chunks} == {rate}
    audio = synthesis.audio
    seconds = len(audio) / rate
    words = len(text.split())
    # Speech runs at roughly 2 to 4 words a second.
    assert words / 4 <= seconds <= words / 2 + 1, seconds
    assert level_db(audio) > -35
    assert np.abs(audio).max() < 0.999  # no clipping
    # Energy where speech has it: most 50 ms frames are voiced.
    frames = audio[: len(audio) // (rate // 20) * (rate // 20)].reshape(-1, rate // 20)
    voiced = np.mean(20 * np.log10(np.sqrt(np.mean(frames**2, axis=1)) + 1e-9) > -40)
    assert voiced > 0.6, voiced
    if rate >= 44100:
        # Resampled up, not stretched: nothing above the voice's own Nyquist frequency (11.025 kHz).
        spectrum = np.abs(np.fft.rfft(audio)) ** 2
        freqs = np.fft.rfftfreq(len(audio), 1 / rate)
        assert spectrum[freqs > 11_600].sum() / spectrum.sum() < 1e-4
    # Segments tile the audio exactly; chunks follow each other.
    assert synthesis.done.total_samples == len(audio)
    segments = synthesis.segments
    assert segments[0].start_offset_samples == 0 and segments[-1].end_offset_samples == len(audio)
    assert all(a.end_offset_samples == b.start_offset_samples for a, b in itertools.pairwise(segments))
    assert " ".join(s.text for s in segments) == text
    offsets = [chunk.offset_samples for chunk in synthesis.chunks]
    sizes = [len(chunk.pcm16) // 2 for chunk in synthesis.chunks]
    assert offsets == [sum(sizes[:i]) for i in range(len(sizes))]


async def test_the_same_text_lasts_the_same_at_every_rate_and_speed_changes_it(tts_channel: grpc.aio.Channel) -> None:
    text = "Speed and rate should behave sensibly here."
    durations = {}
    for rate in (16000, 48000):
        synthesis = await synthesize(tts_channel, text, sample_rate=rate)
        durations[rate] = len(synthesis.audio) / rate
    # Piper's timing varies a little from run to run (it samples durations), so compare loosely.
    assert durations[48000] == pytest.approx(durations[16000], rel=0.2)
    fast = await synthesize(tts_channel, text, sample_rate=16000, speed=2.0)
    slow = await synthesize(tts_channel, text, sample_rate=16000, speed=0.5)
    assert len(fast.audio) < 0.75 * durations[16000] * 16000 < len(slow.audio) / 2
