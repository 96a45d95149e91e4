"""The voices a TTS process has loaded, by name, and how they are loaded from settings."""

from __future__ import annotations

import logging
import time

import grpc

from services.common.server import RequestError
from services.tts.backends import SpeechVoice, VoiceInfo
from services.tts.settings import BUNDLED_VOICE_NAME, TtsSettings

log = logging.getLogger(__name__)


class UnknownVoice(RequestError, LookupError):
    """A stream asked for a voice this server has not loaded (NOT_FOUND)."""

    code = grpc.StatusCode.NOT_FOUND


class VoiceCatalog:
    """Loaded voices by name, plus which one streams get when they name none."""

    def __init__(self, voices: dict[str, SpeechVoice], default: str) -> None:
        if default not in voices:
            raise ValueError(f"default voice {default!r} is not loaded ({sorted(voices)})")
        self._voices = dict(voices)
        self.default = default

    def get(self, name: str) -> SpeechVoice:
        """The voice called ``name`` ("" is the default voice)."""
        try:
            return self._voices[name or self.default]
        except KeyError:
            raise UnknownVoice(
                f"unknown voice {name!r}; this server has {', '.join(sorted(self._voices))} (see ListVoices)"
            ) from None

    def infos(self) -> list[VoiceInfo]:
        return [self._voices[name].info for name in sorted(self._voices)]

    def close(self) -> None:
        for voice in self._voices.values():
            voice.close()


def load_voices(settings: TtsSettings) -> VoiceCatalog:
    """Load every voice the settings name. Piper is imported only here, when a Piper voice is used."""
    voices: dict[str, SpeechVoice] = {}
    if settings.bundled_voice or settings.piper_voices:
        from services.tts.backends import piper

        if settings.bundled_voice:
            path = piper.bundled_voice_path()
            voices[BUNDLED_VOICE_NAME] = piper.PiperSpeechVoice(BUNDLED_VOICE_NAME, path, settings.onnx_threads)
        for name, path in settings.piper_voices.items():
            started = time.perf_counter()
            voices[name] = piper.PiperSpeechVoice(name, path, settings.onnx_threads)
            log.info(
                "voice loaded", extra={"voice": name, "path": str(path), "s": round(time.perf_counter() - started, 2)}
            )
    return VoiceCatalog(voices, settings.default_voice)
