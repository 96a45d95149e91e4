"""The turn model's input: Whisper log-mel features of the last 8 s, padded at the start.

transformers' WhisperFeatureExtractor is the reference the model was trained with.
"""

import numpy as np
import pytest
from transformers import WhisperFeatureExtractor

from services.vad.turn_model import WINDOW_SAMPLES, log_mel_features, scoring_window
from tests.support.speech import speak


@pytest.fixture(scope="module")
def reference() -> WhisperFeatureExtractor:
    return WhisperFeatureExtractor(chunk_length=8)


def reference_features(extractor: WhisperFeatureExtractor, window: np.ndarray) -> np.ndarray:
    features = extractor(
        window,
        sampling_rate=16000,
        padding="max_length",
        max_length=WINDOW_SAMPLES,
        truncation=True,
        do_normalize=True,
        return_tensors="np",
    ).input_features[0]
    return np.asarray(features)


@pytest.mark.parametrize("seconds", [0.4, 3.0, 8.0, 11.0])
def test_features_match_whisper_feature_extractor(reference: WhisperFeatureExtractor, seconds: float) -> None:
    rng = np.random.default_rng(3)
    speech = speak("What is the capital of France? I would like to know.")
    audio = np.resize(speech, int(16000 * seconds)) + rng.standard_normal(int(16000 * seconds)) * 0.001
    window = scoring_window(audio.astype(np.float32))
    ours = log_mel_features(window)
    assert ours.shape == (80, 800) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, reference_features(reference, window), atol=2e-4)


def test_the_window_keeps_the_last_8_seconds_and_pads_the_start() -> None:
    short = np.ones(16000, np.float32)
    window = scoring_window(short)
    assert window.shape == (WINDOW_SAMPLES,)
    assert not window[:-16000].any() and window[-16000:].all()
    long = np.arange(12 * 16000, dtype=np.float32)
    np.testing.assert_array_equal(scoring_window(long), long[-WINDOW_SAMPLES:])


def test_features_refuse_a_window_of_the_wrong_length() -> None:
    with pytest.raises(ValueError, match="128000"):
        log_mel_features(np.zeros(1000, np.float32))
