"""Prometheus metrics of the LLM service (served on the metrics side port)."""

from prometheus_client import Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0)

SESSIONS_ACTIVE = Gauge("parley_llm_sessions_active", "Sessions held now.")
SESSIONS_MAX = Gauge("parley_llm_sessions_max", "Sessions this replica holds at most.")
TURNS_ACTIVE = Gauge("parley_llm_turns_active", "Turns in progress now.")
TURNS = Counter("parley_llm_turns", "Turns finished, by finish reason.", ["finish_reason"])
TURN_ERRORS = Counter("parley_llm_turn_errors", "Turns ended with an error status.", ["code"])
CANCELLATIONS = Counter("parley_llm_cancellations", "Turns cancelled by the client while replying.")
ASR_SECONDS = Histogram(
    "parley_llm_asr_seconds", "End of a turn's input to its final transcript.", buckets=LATENCY_BUCKETS
)
ASR_EARLY_DECODES = Counter("parley_llm_asr_early_decodes", "Decodes run while audio was still arriving.")
FIRST_TOKEN_SECONDS = Histogram(
    "parley_llm_first_token_seconds", "Start of generation to the first token of the reply.", buckets=LATENCY_BUCKETS
)
END_OF_TURN_SCORE_SECONDS = Histogram(
    "parley_llm_end_of_turn_score_seconds",
    "Model time of a ScoreEndOfTurn (the words' end-of-turn probability).",
    buckets=LATENCY_BUCKETS,
)
DECODE_TOKENS_PER_SECOND = Histogram(
    "parley_llm_decode_tokens_per_second",
    "Reply tokens per second after the first, per turn.",
    buckets=(5, 10, 20, 30, 40, 50, 75, 100, 150, 200, 500),
)
INPUT_TOKENS = Counter("parley_llm_input_tokens", "Prompt tokens of turns.")
IMAGES = Counter("parley_llm_images", "Images (JPEG frames) received with turns.")
CACHED_INPUT_TOKENS = Counter("parley_llm_cached_input_tokens", "Prompt tokens served from a session's cache.")
OUTPUT_TOKENS = Counter("parley_llm_output_tokens", "Reply tokens generated.")
SHARED_STEP_TOKENS = Counter(
    "parley_llm_shared_step_tokens", "Reply tokens computed in one decoding step with other replies' tokens."
)
