"""Whisper through faster-whisper, with an encoder whose cost follows the audio.

Whisper pads every input to 30 s (3000 log-mel frames) and its encoder attends over all 1500
positions, so a 2 s question costs as much encoder time as a 30 s one. The length-following
path (whisper.cpp's ``audio_ctx`` idea, measured in ../shared/notes/asr-length-following-encoder.md)
encodes only the speech plus a short pad and completes the encoder output to 1500 positions with
a once-computed encoding of silence. Three details make it work:

- The log-mel maximum is fixed (a gain change, which Whisper does not hear), so the value every
  padded frame gets is one constant whatever the input's loudness.
- The positions after the speech come from encoding a whole 30 s of that constant. The decoder was
  trained on outputs whose tail is encoded silence; given nothing there it repeats itself.
- The decode has no timestamps and a length cap that follows the duration.

Longer inputs are cut at their quietest moments into pieces that fit, each decoded this way.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

RATE = 16000
HOP = 160  # samples per log-mel frame
WINDOW_FRAMES = 3000  # Whisper's 30 s
LOG_MEL_MAX = 1.0  # the fixed maximum of log10(mel); 0 to 2 measured alike
PAD_FRAMES = 50  # encoded after the speech: 0.5 s of the padding value ...
MIN_FRAMES = 500  # ... and at least 5 s in all: with less, one-word answers come out twice ("No. No.")
PAD_VALUE = (LOG_MEL_MAX - 4.0) / 4.0  # Whisper's floor (max - 8), scaled as (x + 4) / 4
SILENT_PEAK = 1e-4  # about -80 dBFS: an input no louder than this has no words
# Above this the decoder's own "no speech" probability means no words. Measured on this path:
# short words ("No.", "Hi.", "Stop.") up to 0.54, white and pink noise alone 0.83 and more (where
# the decoder's guess is "you", Whisper's classic hallucination on noise).
NO_SPEECH_PROBABILITY = 0.7
TOKENS_PER_SECOND = 8  # the length cap: speech is 2-4 tokens a second; more is a runaway decode
BASE_TOKENS = 20

WhisperPath = Literal["length-following", "stock"]


class Whisper:
    """One faster-whisper model and the path its inputs take (not thread-safe: one per worker)."""

    def __init__(self, model: Any, language: str, beam_size: int, path: WhisperPath = "length-following") -> None:
        from faster_whisper.transcribe import get_suppressed_tokens

        self._model = model  # faster_whisper.WhisperModel
        self._language = language
        self._beam_size = beam_size
        self.path = path
        self._tokenizers: dict[str, Any] = {}
        self._tokenizer = self._tokenizer_for(language)
        self._suppress = list(get_suppressed_tokens(self._tokenizer, (-1,)))
        # Where the speech is, completes the encoder output with the encoding of 30 s of padding.
        self._silence = self._encode(np.full((model.feature_extractor.mel_filters.shape[0], WINDOW_FRAMES), PAD_VALUE))

    @property
    def languages(self) -> list[str]:
        """The languages this model transcribes, its default first: one for an English-only model."""
        if not self._model.model.is_multilingual:
            return [self._language]
        from faster_whisper.tokenizer import _LANGUAGE_CODES

        return [self._language, *(code for code in _LANGUAGE_CODES if code != self._language)]

    def _tokenizer_for(self, language: str) -> Any:
        """The tokenizer whose start of transcript names ``language`` (multilingual models; an
        English-only model's has no language token)."""
        from faster_whisper.tokenizer import Tokenizer

        if language not in self._tokenizers:
            multilingual = self._model.model.is_multilingual
            self._tokenizers[language] = Tokenizer(
                self._model.hf_tokenizer, multilingual, task="transcribe", language=language if multilingual else None
            )
        return self._tokenizers[language]

    def transcribe(self, audio: np.ndarray, prompt: str = "", language: str = "") -> str:
        """Text of 16 kHz float32 mono ``audio``; empty when it holds no words. ``prompt``: words
        the audio is likely to hold (names, terms), which Whisper then spells as given;
        ``language``: the speech's (one of ``languages``; empty: the model's default)."""
        if not len(audio) or float(np.max(np.abs(audio))) <= SILENT_PEAK:
            return ""
        language = language or self._language
        if language not in self.languages:
            raise ValueError(f"this recogniser does not transcribe {language!r}")
        if self.path == "stock":
            return self._transcribe_stock(audio, prompt, language)
        texts = (self._transcribe_length_following(piece, prompt, language) for piece in pieces(audio))
        return " ".join(text for text in texts if text)

    def _decoder_prompt(self, prompt: str, language: str = "") -> list[int]:
        """The decoder's start: Whisper's "previous text" (the prompt, its last half-context of
        tokens) before the start of transcript (naming the language), as faster-whisper builds it."""
        tokenizer = self._tokenizer_for(language or self._language)
        start = [*tokenizer.sot_sequence, tokenizer.no_timestamps]
        if not prompt.strip():
            return start
        previous = tokenizer.encode(" " + prompt.strip())[-(self._model.max_length // 2 - 1) :]
        return [tokenizer.sot_prev, *previous, *start]

    def _transcribe_stock(self, audio: np.ndarray, prompt: str = "", language: str = "") -> str:
        segments, _ = self._model.transcribe(
            audio,
            initial_prompt=prompt.strip() or None,
            language=language or self._language,
            beam_size=self._beam_size,
            # Beyond one window, timestamps: they are how Whisper moves through long audio.
            # Without them it decodes each 30 s window in one go and stops early, dropping
            # sentences from the middle (5 of 14 questions in a 31 s input).
            without_timestamps=len(audio) <= WINDOW_FRAMES * HOP,
            condition_on_previous_text=False,
            vad_filter=False,
            # One decode, no retries at higher temperatures: faster-whisper's default fallback
            # decodes hard audio up to six times, which took a voice turn's recognition from
            # about 0.35 s to 2.5 s on this machine; a short utterance gains little from it.
            temperature=0.0,
        )
        return " ".join(segment.text.strip() for segment in segments).strip()

    def _transcribe_length_following(self, audio: np.ndarray, prompt: str = "", language: str = "") -> str:
        from ctranslate2 import StorageView

        features = self.features(audio)
        frames = max(features.shape[1] + PAD_FRAMES, MIN_FRAMES)
        frames += frames % 2  # the encoder halves the frame count
        padded = np.pad(features, ((0, 0), (0, frames - features.shape[1])), constant_values=PAD_VALUE)
        encoded = self._encode(padded)
        whole = np.concatenate((encoded, self._silence[:, encoded.shape[1] :]), axis=1)
        seconds = len(audio) / RATE
        decoder_prompt = self._decoder_prompt(prompt, language)
        cap = min(self._model.max_length - len(decoder_prompt), BASE_TOKENS + int(TOKENS_PER_SECOND * seconds))
        result = self._model.model.generate(
            StorageView.from_array(np.ascontiguousarray(whole)),
            [decoder_prompt],
            beam_size=self._beam_size,
            max_length=len(decoder_prompt) + cap,
            return_no_speech_prob=True,
            suppress_blank=True,
            suppress_tokens=self._suppress,
        )[0]
        if result.no_speech_prob > NO_SPEECH_PROBABILITY:
            return ""
        return self._tokenizer.decode(result.sequences_ids[0]).strip()

    def features(self, audio: np.ndarray) -> np.ndarray:
        """Whisper's log-mel features of ``audio`` (80 x frames), their maximum shifted to the fixed one.

        faster-whisper floors ``log10(mel)`` at its maximum minus 8 and scales by ``(x + 4) / 4``;
        adding a constant to every value is the same as fixing the maximum before the floor.
        """
        features = self._model.feature_extractor(audio.astype(np.float32, copy=False))
        return features + ((LOG_MEL_MAX + 4.0) / 4.0 - float(features.max()))

    def _encode(self, features: np.ndarray) -> np.ndarray:
        from ctranslate2 import StorageView

        batch = StorageView.from_array(np.ascontiguousarray(features[None], dtype=np.float32))
        return np.array(self._model.model.encode(batch, to_cpu=True))


LONGEST_PIECE = (WINDOW_FRAMES - PAD_FRAMES - 2) * HOP  # samples the length-following path takes at once
CUT_SEARCH = 5 * RATE  # a long input is cut at its quietest 100 ms within the last 5 s of a piece
CUT_FRAME = RATE // 10


def pieces(audio: np.ndarray) -> list[np.ndarray]:
    """``audio`` cut into pieces of at most ``LONGEST_PIECE`` samples, each cut at a quiet moment."""
    found = []
    while len(audio) > LONGEST_PIECE:
        search = audio[LONGEST_PIECE - CUT_SEARCH : LONGEST_PIECE]
        energy = np.mean(search[: len(search) // CUT_FRAME * CUT_FRAME].reshape(-1, CUT_FRAME) ** 2, axis=1)
        cut = LONGEST_PIECE - CUT_SEARCH + int(np.argmin(energy)) * CUT_FRAME + CUT_FRAME // 2
        found.append(audio[:cut])
        audio = audio[cut:]
    return [*found, audio]
