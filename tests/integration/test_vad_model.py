"""The bundled Silero model, and the batcher's state handling checked against plain sequential runs."""

import asyncio
from pathlib import Path

import numpy as np
import pytest

from services.common.bundled import verify_sha256
from services.vad.batcher import InferenceBatcher, InferenceJob
from services.vad.model import BUNDLED_MODEL, SileroVad, context_samples, initial_state, window_samples
from tests.support import speech

RATE = 16000


@pytest.fixture(scope="module")
def model() -> SileroVad:
    return SileroVad()


def sequential_probabilities(model: SileroVad, audio: np.ndarray) -> np.ndarray:
    """One stream, one window at a time, batch of one: the reference."""
    window, context = window_samples(RATE), context_samples(RATE)
    state, previous = initial_state()[:, None, :], np.zeros(context, np.float32)
    out = []
    for start in range(0, len(audio) - window + 1, window):
        row = np.concatenate((previous, audio[start : start + window]))[None, :]
        probability, state = model.infer(row, state, RATE)
        previous = row[0, -context:]
        out.append(probability[0])
    return np.array(out)


def test_bundled_model_is_the_pinned_file() -> None:
    verify_sha256(BUNDLED_MODEL.locate(), BUNDLED_MODEL.sha256)


def test_a_tampered_model_is_refused(tmp_path: Path) -> None:
    tampered = tmp_path / "silero_vad.onnx"
    tampered.write_bytes(BUNDLED_MODEL.locate().read_bytes() + b"\0")
    with pytest.raises(ValueError, match="refusing to load"):
        verify_sha256(tampered, BUNDLED_MODEL.sha256)


async def test_batched_streams_match_sequential_runs(model: SileroVad) -> None:
    voices = [speech.speak(text, RATE) for text in ("Hello there.", "Good morning to you all.", "Nine.")]
    streams = [np.concatenate((np.zeros(RATE // (i + 2), np.float32), v)) for i, v in enumerate(voices)]
    batcher = InferenceBatcher(model, max_batch=2)  # fewer slots than streams: exercises queueing too
    batcher.start()
    try:

        async def run_stream(audio: np.ndarray) -> np.ndarray:
            window, context = window_samples(RATE), context_samples(RATE)
            state, previous, probabilities = initial_state(), np.zeros(context, np.float32), []
            usable = len(audio) // window * window
            # Uneven job sizes, so steps of different streams interleave.
            for piece in np.array_split(audio[:usable].reshape(-1, window), 5):
                job = InferenceJob(RATE, piece, state, previous)
                await batcher.run(job)
                state, previous = job.state, job.context
                probabilities.extend(job.probabilities.tolist())
            return np.array(probabilities)

        results = await asyncio.gather(*(run_stream(audio) for audio in streams))
    finally:
        batcher.close()
    for audio, batched in zip(streams, results, strict=True):
        reference = sequential_probabilities(model, audio)
        assert np.allclose(batched, reference, atol=1e-5)
        assert reference.max() > 0.8  # there is speech in it, so the comparison means something
