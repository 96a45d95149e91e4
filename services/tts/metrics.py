"""Prometheus metrics of the TTS service (served on the metrics side port)."""

from prometheus_client import Counter, Gauge, Histogram

STREAMS_ACTIVE = Gauge("parley_tts_streams_active", "Synthesize streams open now.")
STREAMS = Counter("parley_tts_streams", "Synthesize streams opened.")
STREAM_ERRORS = Counter(
    "parley_tts_stream_errors", "Synthesize streams ended with an error status (CANCELLED: by the client).", ["code"]
)
CHARACTERS_RECEIVED = Counter("parley_tts_characters_received", "Characters of text read from streams.")
CHARACTERS = Counter("parley_tts_characters", "Characters of text synthesised (as received, before normalisation).")
SEGMENTS = Counter("parley_tts_segments", "Pieces of text synthesised.")
AUDIO_SECONDS = Counter("parley_tts_audio_seconds", "Seconds of audio produced.")
BACKLOG_CHARACTERS = Gauge(
    "parley_tts_backlog_characters", "Text received and waiting for synthesis, all streams together."
)
FIRST_AUDIO_SECONDS = Histogram(
    "parley_tts_first_audio_seconds",
    "Time to first audio: from a stream's first piece of text being complete to its first audio chunk sent.",
    buckets=(0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0, 2.0),
)
REALTIME_FACTOR = Histogram(
    "parley_tts_realtime_factor",
    "Synthesis time divided by the duration of the audio made, per piece (below 1: faster than real time).",
    buckets=(0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0, 2.0),
)
SYNTHESIS_SECONDS = Histogram(
    "parley_tts_synthesis_seconds",
    "Time to synthesise one piece (normalise, synthesise, resample) on a worker thread.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 2.0, 5.0),
)
QUEUE_WAIT_SECONDS = Histogram(
    "parley_tts_queue_wait_seconds",
    "Time a piece waited for a free worker thread.",
    buckets=(0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
