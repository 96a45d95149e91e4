"""The VAD service: Silero voice activity detection behind ``parley.v1.VoiceActivityService``."""
