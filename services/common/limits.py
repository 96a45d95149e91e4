"""Ranges that one service enforces and another must know, so that a client's value is judged
once, where it is set, by the same numbers that the service applies later."""

# Speaking rate of the TTS service (SynthesisConfig.speed); the edge checks session.update by it.
MIN_SPEECH_SPEED, MAX_SPEECH_SPEED = 0.5, 2.0
# The OpenAI Realtime API's own bound on max_output_tokens ("inf" aside); an LLM replica may
# allow fewer (GetLoadResponse.max_output_tokens).
MAX_OUTPUT_TOKENS_API = 4096
