"""Prometheus metrics of the VAD service (served on the metrics side port)."""

from prometheus_client import Counter, Gauge, Histogram

STREAMS_ACTIVE = Gauge("parley_vad_streams_active", "Detect streams open now.")
STREAMS = Counter("parley_vad_streams", "Detect streams opened.")
STREAM_ERRORS = Counter("parley_vad_stream_errors", "Detect streams ended with an error status.", ["code"])
CHUNKS = Counter("parley_vad_chunks", "Audio chunks processed.")
AUDIO_SECONDS = Counter("parley_vad_audio_seconds", "Seconds of audio analysed.")
WINDOWS = Counter("parley_vad_windows", "Analysis windows run through the model.")
EVENTS = Counter("parley_vad_events", "Speech events sent.", ["type"])
INFERENCE_SECONDS = Histogram(
    "parley_vad_inference_seconds",
    "Time of one batched model step.",
    buckets=(0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1),
)
BATCH_SIZE = Histogram(
    "parley_vad_batch_size", "Streams advanced by one model step.", buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256)
)
CHUNK_SECONDS = Histogram(
    "parley_vad_chunk_seconds",
    "Time from reading an audio chunk to having its events ready.",
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0),
)
BEHIND_REALTIME = Counter(
    "parley_vad_behind_realtime", "Times a stream took longer to analyse than the audio lasted (per second)."
)
TURN_SCORING_SECONDS = Histogram(
    "parley_vad_turn_scoring_seconds",
    "Time of one end-of-turn scoring (features and turn model), waiting for a thread included.",
    buckets=(0.01, 0.02, 0.03, 0.04, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0),
)
TURN_PROBABILITY = Histogram(
    "parley_vad_turn_probability",
    "The turn model's probability that the turn was finished, per scored pause.",
    buckets=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95),
)
TURNS = Counter("parley_vad_turns", "Turns ended by the turn model, by reason.", ["reason"])
