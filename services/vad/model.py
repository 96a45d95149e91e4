"""The Silero VAD model, run with onnxruntime on batches of windows from many streams."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from services.common.bundled import BundledFile
from services.common.onnx import cpu_session

# The ONNX file inside the pinned `silero-vad` wheel. Only the file is used: importing the
# package would import torch and set the whole process to one torch thread.
BUNDLED_MODEL = BundledFile(
    "silero-vad", "silero_vad/data/silero_vad.onnx", "1a153a22f4509e292a94e67d6f9b85e8deb25b4988682b7e174c65279d8788e3"
)

SUPPORTED_RATES = (8000, 16000)
STATE_SIZE = 128


def window_samples(sample_rate: int) -> int:
    """Samples the model analyses per step: 32 ms."""
    return 512 if sample_rate == 16000 else 256


def context_samples(sample_rate: int) -> int:
    """Samples of the previous window the model sees in front of each new one."""
    return 64 if sample_rate == 16000 else 32


def initial_state() -> np.ndarray:
    """Recurrent state of a new stream, shape (2, 128)."""
    return np.zeros((2, STATE_SIZE), dtype=np.float32)


class SileroVad:
    """Stateless batched inference: callers own each stream's state and context."""

    def __init__(self, path: Path | None = None, threads: int = 1) -> None:
        if path is None:
            path = BUNDLED_MODEL.verified()
        self.path = path
        self._session = cpu_session(path, threads)

    def infer(self, inputs: np.ndarray, states: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
        """Run one step for a batch of streams.

        ``inputs``: (batch, context + window) float32, each row the stream's context followed by
        its next window. ``states``: (2, batch, 128). Returns speech probabilities (batch,) and
        the new states (2, batch, 128).
        """
        probabilities, new_states = self._session.run(
            None, {"input": inputs, "state": states, "sr": np.array(sample_rate, dtype=np.int64)}
        )
        return probabilities[:, 0], new_states
