"""A session's configuration: the Realtime API's session object plus Parley's own settings."""

from __future__ import annotations

from typing import Any

from openai.types import realtime as rt
from openai.types.realtime import realtime_audio_formats
from openai.types.realtime import realtime_audio_input_turn_detection as turn_detection

from services.edge import events, tools
from services.edge.protocol import ProtocolError, SessionConfig, Transcription, TurnDetection
from services.edge.settings import EdgeSettings

# OpenAI's voice names: a session naming one gets the voice the server maps them to.
OPENAI_VOICES = frozenset(
    arg
    for member in getattr(
        rt.realtime_audio_config_output.RealtimeAudioConfigOutput.model_fields["voice"].annotation, "__args__", ()
    )
    for arg in getattr(member, "__args__", ())
    if isinstance(arg, str)
)

# Modes this edge runs today; the others are accepted by the schema and refused with a message.
AVAILABLE_MODES = ("chat", "half_duplex", "full_duplex", "omni")
DEFAULT_MODEL = "parley"


def _merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


class SessionState:
    """The session config in force, updated by ``session.update`` (deep merge, then validated)."""

    def __init__(self, session_id: str, settings: EdgeSettings, model: str | None = None) -> None:
        self.session_id = session_id
        self._settings = settings
        self.tts_voice = ""  # the voice the session chose, as the TTS service names it
        self.recogniser_language = "en"  # the language the recogniser assumes when a session names none
        self.config = SessionConfig.model_validate({})
        initial: dict[str, Any] = {"model": model or DEFAULT_MODEL, "parley": {"mode": settings.default_mode}}
        if settings.instructions:
            initial["instructions"] = settings.instructions
        self.config = self.apply(initial)

    def apply(self, update: dict[str, Any]) -> SessionConfig:
        """The config after ``update`` (a session object as the client sent it); ProtocolError if invalid.

        Choosing a mode sets the turn detection that goes with it unless the update sets one:
        chat has none (the client commits), half-duplex has server VAD.
        """
        mode = (update.get("parley") or {}).get("mode")
        if mode is not None and mode not in AVAILABLE_MODES:
            raise ProtocolError(
                "mode_not_available",
                f"mode {mode!r} is not available on this server; available: {', '.join(AVAILABLE_MODES)}",
                param="session.parley.mode",
            )
        current = self.config.model_dump(exclude_none=False)
        merged = _merge(current, update)
        turn_detection_given = "turn_detection" in ((update.get("audio") or {}).get("input") or {})
        if mode is not None and not turn_detection_given:
            audio_input = merged.setdefault("audio", {}) or {}
            merged["audio"] = audio_input
            input_config = audio_input.setdefault("input", {}) or {}
            audio_input["input"] = input_config
            if mode == "chat":
                input_config["turn_detection"] = None
            elif input_config.get("turn_detection") is None:
                input_config["turn_detection"] = TurnDetection.model_validate({}).model_dump()
        try:
            return SessionConfig.model_validate(merged)
        except ValueError as exc:  # pydantic's ValidationError
            raise ProtocolError("invalid_value", f"session.update: {exc}") from None

    def update(self, update: dict[str, Any]) -> None:
        self.config = self.apply(update)

    @property
    def mode(self) -> str:
        assert self.config.parley is not None and self.config.parley.mode is not None
        return self.config.parley.mode

    @property
    def turn_detection(self) -> TurnDetection | None:
        audio = self.config.audio
        return audio.input.turn_detection if audio and audio.input else None

    @property
    def modalities(self) -> list[events.Modality]:
        return list(self.config.output_modalities or ["audio"])

    @property
    def voice(self) -> str:
        """The TTS voice in force: the session's (an OpenAI voice name mapped by the session), else
        the server's default ("" lets the TTS service choose)."""
        return self.tts_voice or self._settings.voice

    @property
    def transcription_prompt(self) -> str:
        """Words the recogniser should expect: the session's transcription prompt and keywords."""
        transcription = self._transcription
        if transcription is None:
            return ""
        return " ".join(part for part in (transcription.prompt, ", ".join(transcription.keywords or [])) if part)

    @property
    def transcription_language(self) -> str:
        """The language of the user's speech, if the session names one: ``language``, or the
        only one of ``languages``; empty: the recogniser's default."""
        transcription = self._transcription
        if transcription is None:
            return ""
        if transcription.language:
            return transcription.language
        return transcription.languages[0] if transcription.languages and len(transcription.languages) == 1 else ""

    @property
    def _transcription(self) -> Transcription | None:
        audio = self.config.audio
        return audio.input.transcription if audio and audio.input else None

    @property
    def speed(self) -> float | None:
        audio = self.config.audio
        return audio.output.speed if audio and audio.output else None

    @property
    def max_output_tokens(self) -> int | None:
        value = self.config.max_output_tokens
        return value if isinstance(value, int) else None

    def to_event_object(self) -> events.SessionObject:
        """The session object of ``session.created`` / ``session.updated``: every field with the
        value in force, which for the fields Parley does not use is its own (README, "Session
        fields"), whatever the client asked for."""
        config = self.config
        audio = config.audio
        transcription = audio.input.transcription if audio and audio.input else None
        parley = config.parley
        return events.SessionObject(
            type="realtime",
            id=self.session_id,
            object="realtime.session",
            model=config.model or DEFAULT_MODEL,
            instructions=config.instructions or "",
            output_modalities=self.modalities,
            max_output_tokens=config.max_output_tokens or "inf",
            tool_choice=tools.choice_object(config.tool_choice),  # type: ignore[arg-type]
            tools=tools.session_object(config.tools),  # type: ignore[arg-type]
            tracing=None,
            truncation="auto",
            prompt=None,
            audio=rt.RealtimeAudioConfig(
                input=rt.RealtimeAudioConfigInput(
                    format=PCM_FORMAT,
                    transcription=_transcription_object(
                        transcription.languages if transcription else None,
                        model=(transcription.model if transcription else None) or "whisper",
                        language=self.transcription_language or self.recogniser_language,
                        prompt=self.transcription_prompt or None,
                    ),
                    noise_reduction=None,
                    turn_detection=_turn_detection_object(self.turn_detection),
                ),
                output=rt.RealtimeAudioConfigOutput(format=PCM_FORMAT, voice=self.voice, speed=self.speed or 1.0),
            ),
            parley={
                "mode": self.mode,
                "video_frames_per_second": parley.video_frames_per_second if parley else None,
                "record": bool(parley and parley.record),
                "live_transcripts": bool(parley and parley.live_transcripts),
            },
        )


PCM_FORMAT = realtime_audio_formats.AudioPCM(type="audio/pcm", rate=24000)


def _transcription_object(languages: list[str] | None, **fields: Any) -> rt.AudioTranscription:
    """The session's transcription as session.updated reports it (``languages`` only when given)."""
    transcription = rt.AudioTranscription(**fields)
    if languages:
        transcription.languages = languages
    return transcription


def _turn_detection_object(detection: TurnDetection | None) -> turn_detection.RealtimeAudioInputTurnDetection:
    if detection is None:
        return None
    if detection.type == "semantic_vad":
        return turn_detection.SemanticVad(
            type="semantic_vad",
            eagerness=detection.eagerness or "auto",
            create_response=detection.create_response,
            interrupt_response=detection.interrupt_response,
        )
    return turn_detection.ServerVad(
        type="server_vad",
        create_response=detection.create_response,
        interrupt_response=detection.interrupt_response,
        threshold=detection.threshold,
        prefix_padding_ms=detection.prefix_padding_ms,
        silence_duration_ms=detection.silence_duration_ms,
        idle_timeout_ms=detection.idle_timeout_ms,
    )
