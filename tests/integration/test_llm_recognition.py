"""Speech recognition in process: the length-following path against faster-whisper's stock 30 s
path, on a labelled set synthesised here, so that the machine's differences cancel out."""

import numpy as np
import pytest

from services.llm.asr import BUNDLED_WHISPER
from services.llm.whisper import Whisper
from tests.support import speech
from tests.support.asr_samples import QUESTIONS, RATE, WORSE_AT_5_PERCENT, make_clips, score, worse_by
from tests.support.transcribe import spoken_words, word_errors

# The two paths are compared clip by clip (matched pairs): on 414 reference words per condition
# their error rates differ by one to two points between CPU kinds (bf16 and int8 kernels move
# single words on a few clips either way; ../shared/notes/asr-length-following-encoder.md), so a
# fixed allowance of points fails on one kind and hides a real loss on another. A path that is
# worse on even three clips and better on none fails; without the silence tail (50-70% WER) it
# fails by far.


@pytest.fixture(scope="module")
def model():
    from faster_whisper import WhisperModel

    return WhisperModel(str(BUNDLED_WHISPER.verified().parent), device="cpu", compute_type="int8", cpu_threads=2)


@pytest.fixture(scope="module")
def length_following(model) -> Whisper:
    return Whisper(model, "en", beam_size=5)


def test_length_following_is_as_accurate_as_the_stock_path(model, length_following: Whisper) -> None:
    stock = Whisper(model, "en", beam_size=5, path="stock")
    clips = make_clips()
    assert len(clips) >= 80
    for noisy in (False, True):
        subset = [clip for clip in clips if clip.noisy == noisy]
        old, new = score(subset, stock.transcribe), score(subset, length_following.transcribe)
        condition = "25 dB noise" if noisy else "clean"
        worse = worse_by(new, old)
        print(f"{condition}: stock {old.rate:.1%}, length-following {new.rate:.1%}, worse by {worse:.2f} SE")
        assert worse < WORSE_AT_5_PERCENT, (condition, old.rate, new.rate, worse, new.wrong)


@pytest.mark.parametrize(
    ("path", "count"),
    [("length-following", 12), ("length-following", 17), ("stock", 17)],
    ids=["26 s in one piece", "37 s in two pieces", "37 s stock"],
)
def test_long_input_is_transcribed_whole(model, path: str, count: int) -> None:
    sentences = QUESTIONS[:count]
    gap = np.zeros(RATE // 2, np.float32)
    audio = np.concatenate([piece for text in sentences for piece in (speech.piper_voice(text), gap)])
    seconds = len(audio) / RATE
    assert (20 < seconds < 29) if count == 12 else (30 < seconds < 40)
    reference = spoken_words(" ".join(sentences))
    heard = spoken_words(Whisper(model, "en", beam_size=5, path=path).transcribe(audio))
    assert word_errors(reference, heard) <= 0.1 * len(reference), heard


@pytest.mark.parametrize(
    "audio",
    [
        np.zeros(0, np.float32),
        np.zeros(RATE * 2, np.float32),
        speech.white_noise(RATE // 2, 0.01, seed=1),
        speech.white_noise(RATE * 2, 0.05, seed=2),
        speech.pink_noise(RATE * 2, 0.01, seed=3),
    ],
    ids=["empty", "digital silence", "short white noise", "white noise", "pink noise"],
)
def test_no_words_give_an_empty_transcript(length_following: Whisper, audio: np.ndarray) -> None:
    assert length_following.transcribe(audio) == ""


@pytest.mark.parametrize("word", ["Yes.", "No.", "Stop.", "Okay.", "Thanks."])
def test_a_single_word_comes_out_once(length_following: Whisper, word: str) -> None:
    audio = np.concatenate(
        (np.zeros(RATE // 5, np.float32), speech.espeak_voice(word), np.zeros(RATE // 2, np.float32))
    )
    assert spoken_words(length_following.transcribe(audio)) == spoken_words(word)


@pytest.mark.parametrize("path", ["length-following", "stock"])
def test_the_language_asked_for_is_the_models_or_refused(model, path: str) -> None:
    whisper = Whisper(model, "en", beam_size=5, path=path)  # type: ignore[arg-type]
    assert whisper.languages == ["en"]  # tiny.en is English only
    audio = np.concatenate((speech.piper_voice("What is the capital of France?"), np.zeros(RATE // 2, np.float32)))
    assert {"capital", "france"} <= set(spoken_words(whisper.transcribe(audio, language="en")))
    with pytest.raises(ValueError, match="'fr'"):
        whisper.transcribe(audio, language="fr")
