"""The TTS service: streaming speech synthesis behind ``parley.v1.SpeechSynthesisService``."""
