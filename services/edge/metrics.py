"""The edge's Prometheus metrics (served at /metrics on the edge's HTTP port)."""

from prometheus_client import Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.25, 1.5, 2.0, 3.0, 5.0, 10.0)
_STAGE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0)

ACTIVE_SESSIONS = Gauge("parley_edge_active_sessions", "Sessions open now.", ["transport"])
MAX_SESSIONS = Gauge("parley_edge_max_sessions", "Sessions this edge holds at once.")
SESSIONS = Counter("parley_edge_sessions", "Sessions opened.", ["transport"])
REFUSED_SESSIONS = Counter("parley_edge_refused_sessions", "Sessions refused.", ["reason"])
SLOW_CLIENTS = Counter(
    "parley_edge_slow_clients", "WebSocket sessions ended because the client stopped reading its events."
)
CLIENT_THROTTLED_SECONDS = Counter(
    "parley_edge_client_throttled_seconds",
    "Seconds clients' events waited for sending beyond --max-client-bytes-per-second.",
)
CLIENT_REFUSED_EVENTS = Counter(
    "parley_edge_client_refused_events",
    "Data channel events refused: sent so far beyond --max-client-bytes-per-second that a burst was waiting.",
)
CALLS_NEVER_CONNECTED = Counter(
    "parley_edge_calls_never_connected", "WebRTC calls ended because their connection was not up in time."
)
SESSION_SECONDS = Histogram(
    "parley_edge_session_seconds", "How long sessions lasted.", buckets=(10, 30, 60, 120, 300, 600, 1200, 3600)
)
TURNS = Counter("parley_edge_turns", "Responses by how they ended.", ["mode", "status"])
VOICE_TO_VOICE = Histogram(
    "parley_edge_voice_to_voice_seconds",
    "From the user's last speech sample reaching the edge to the first assistant audio leaving it.",
    buckets=_LATENCY_BUCKETS,
)
STAGE_SECONDS = Histogram(
    "parley_edge_stage_seconds",
    "Per-stage latency of voice turns: end_of_speech_wait, llm_asr, llm_first_token, text_to_first_audio.",
    ["stage"],
    buckets=_STAGE_BUCKETS,
)
SERVICE_ERRORS = Counter("parley_edge_service_errors", "Failed calls to model services.", ["service"])
CLIENT_ERRORS = Counter("parley_edge_client_errors", "error events sent for bad client input.", ["code"])
SPECULATIONS = Counter(
    "parley_edge_speculative_turns",
    "Answers begun at a tentative pause: kept (the pause ended the turn) or dropped (the user went on).",
    ["outcome"],
)
END_OF_TURN = Counter(
    "parley_edge_end_of_turn",
    "Voice turns ended, by detection (server_vad, semantic_vad, client) and reason (silence, commit, "
    "complete: the turn model judged it finished, max_wait: it did not but the silence was long enough).",
    ["detection", "reason"],
)
BARGE_INS = Counter("parley_edge_barge_ins", "Replies cancelled because the user spoke over them (full duplex).")
FALSE_INTERRUPTIONS = Counter(
    "parley_edge_false_interruptions",
    "Speech over the assistant that paused it but ended too soon to cancel the reply, which played on.",
)
ECHO_REJECTED = Counter(
    "parley_edge_echo_rejected", "Speech starts over the assistant taken for its own voice coming back (echo)."
)
BARGE_IN_SECONDS = Histogram(
    "parley_edge_barge_in_seconds",
    "From the interrupting speech reaching the edge to the assistant's voice paused.",
    buckets=(0.02, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75, 1.0),
)
QUEUE_LENGTH = Gauge("parley_edge_queue_length", "Sessions waiting for a free LLM replica.")
QUEUE_WAIT_SECONDS = Histogram(
    "parley_edge_queue_wait_seconds",
    "How long admitted sessions waited for an LLM replica (0: at once).",
    buckets=(0, 1, 5, 15, 30, 60, 120, 300, 600),
)
QUEUE_LEFT = Counter("parley_edge_queue_left", "Sessions that went away (or timed out) while waiting.")
REPLICA_SESSIONS = Gauge("parley_edge_replica_sessions", "Sessions pinned to each LLM replica.", ["replica"])
REPLICA_HEALTHY = Gauge("parley_edge_replica_healthy", "1 while an LLM replica answers its checks.", ["replica"])

END_OF_TURN_WORDS = Counter(
    "parley_edge_end_of_turn_words",
    "semantic_vad pauses judged with the words: what the transcript's score said (unfinished, finished, "
    "unsure) and what was decided (end, hold: the words kept open a turn the sound called finished).",
    ["words", "decision"],
)
