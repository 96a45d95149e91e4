"""Settings of the edge."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.common.settings import ProcessSettings


class EdgeSettings(ProcessSettings):
    """The edge: the call page, the OpenAI Realtime API over WebRTC and WebSocket, and the
    sessions that drive the VAD, LLM and TTS services.

    Every option can also be set in the environment as PARLEY_EDGE_<OPTION>; flags win.
    """

    model_config = SettingsConfigDict(env_prefix="PARLEY_EDGE_", cli_prog_name="python -m services.edge")

    host: str = Field(
        "127.0.0.1",
        description="Address to bind. Loopback by default; any other address serves HTTPS (browsers allow the "
        "microphone only on a secure origin), with --tls-cert/--tls-key or a self-signed certificate.",
    )
    port: int = Field(8006, ge=0, le=65535, description="HTTP port: call page, API, WebSocket, /metrics (0: any).")
    tls_cert: Path | None = Field(None, description="PEM certificate chain for HTTPS.")
    tls_key: Path | None = Field(None, description="PEM private key for HTTPS.")
    tls_self_signed_dir: Path = Field(
        Path.home() / ".cache" / "parley" / "tls",
        description="Where the self-signed certificate is kept when HTTPS is needed and none is given.",
    )
    api_token: str | None = Field(
        None,
        description="When set, API requests need 'Authorization: Bearer <token>' (WebSocket clients may also "
        "pass it as the subprotocol 'openai-insecure-api-key.<token>'). Never logged.",
    )

    insecure_no_auth: bool = Field(
        False,
        description="Serve off loopback without --api-token: anyone who reaches the port can talk to the models. "
        "Without this, an edge bound beyond loopback refuses to start without a token.",
    )

    vad_address: str = Field("127.0.0.1:50051", description="host:port of the VAD service.")
    llm_address: str = Field("127.0.0.1:50052", description="host:port of the LLM service (one replica).")
    llm_addresses: list[str] = Field(
        default_factory=list,
        description='host:port of each LLM replica (JSON list, e.g. ["10.0.0.5:50052","10.0.0.6:50052"]); '
        "replaces --llm-address. Each session is pinned to one replica for its life.",
    )
    llm_dns: str = Field(
        "",
        description="host:port whose DNS records are the LLM replicas (e.g. a headless Kubernetes Service, "
        "llm-replicas:50052), re-read at every replica check.",
    )
    llm_sessions_per_replica: int = Field(
        0, ge=0, description="Sessions placed on one LLM replica (0: as many as the replica says it holds)."
    )
    replica_check_seconds: float = Field(
        2.0, gt=0, le=60, description="How often each LLM replica is asked its load; one that fails is taken out."
    )
    queue_max_wait_seconds: float = Field(
        600, gt=0, description="Longest a session waits in the queue for a free LLM replica before it is closed."
    )
    queue_eta_prior_seconds: float = Field(
        180, gt=0, description="Session length assumed for queue wait estimates until sessions have ended here."
    )
    tts_address: str = Field("127.0.0.1:50053", description="host:port of the TTS service.")
    grpc_tls_ca: Path | None = Field(
        None,
        description="PEM CA bundle: talk to the vad, llm and tts services over TLS (they run with --tls-cert), "
        "trusting these certificates. Unset: plain text (loopback or a private network).",
    )
    service_stall_seconds: float = Field(
        30.0,
        gt=0,
        le=600,
        description="A reply fails (response.done 'failed', an error event) when, once the user's turn has "
        "ended, the LLM service says nothing for this long.",
    )
    max_message_bytes: int = Field(
        4 * 1024 * 1024, ge=64 * 1024, le=64 * 1024 * 1024, description="Largest gRPC message sent or received."
    )

    max_sessions: int = Field(
        8, ge=1, le=10_000, description="Sessions talking at once; more wait in the queue (parley.queue.updated)."
    )
    queue_max_length: int = Field(
        32,
        ge=0,
        le=10_000,
        description="Sessions that may wait in the queue; beyond them, new ones get 'server full' (503 or "
        "close 1013, with a retry time).",
    )
    ice_connect_seconds: float = Field(
        10.0,
        gt=0,
        le=300,
        description="A WebRTC call whose connection is not up this long after its answer is ended (its slot freed).",
    )
    idle_timeout_seconds: float = Field(
        180.0, gt=0, description="A session with no speech and no client event for this long is closed."
    )
    max_session_seconds: float = Field(3600.0, gt=0, description="Longest a session may last.")
    max_event_bytes: int = Field(
        4 * 1024 * 1024, ge=64 * 1024, le=32 * 1024 * 1024, description="Largest client event (JSON text) accepted."
    )
    max_client_bytes_per_second: int = Field(
        2 * 1024 * 1024,
        ge=64 * 1024,
        description="What one client may send a second on average (twice --max-event-bytes at once); beyond it "
        "a WebSocket is read no further until it is back within the rate, and a data channel's events wait "
        "(beyond a burst waiting, they are refused). Real-time audio is 64 KB/s.",
    )
    max_sdp_bytes: int = Field(64 * 1024, ge=4096, le=1024 * 1024, description="Largest SDP offer accepted.")
    max_input_buffer_seconds: float = Field(
        60.0, gt=0, le=600, description="Uncommitted input audio kept per session (push-to-talk); older is dropped."
    )

    default_mode: Literal["chat", "half_duplex"] = Field(
        "half_duplex", description="Mode of a session that does not choose one (session.parley.mode)."
    )
    voice: str = Field("", description="TTS voice for sessions that name none (empty: the TTS service's default).")
    openai_voice: str = Field(
        "",
        description="TTS voice that OpenAI's voice names (alloy, marin, ...) stand for, so clients written for "
        "OpenAI work unchanged (empty: the voice sessions get when they name none).",
    )
    record_dir: Path | None = Field(
        None,
        description="Folder for session recordings (metadata, events, both voices, omni pictures). Without it "
        "nothing is recorded and sessions asking for recording get an error.",
    )
    record_by_default: bool = Field(
        False, description="Record sessions that do not say (session.parley.record); needs --record-dir."
    )
    record_keep_sessions: int = Field(100, ge=1, description="Recordings kept: the oldest go beyond this many.")
    record_keep_days: float = Field(7.0, gt=0, description="Recordings older than this many days are removed.")
    omni_max_frames_per_turn: int = Field(
        4, ge=1, le=8, description="Omni: most camera pictures sent with one turn (one a second of speech)."
    )
    instructions: str = Field(
        "", max_length=16_000, description="System prompt for sessions that set none (session.instructions)."
    )
    speculative_pause_ms: int = Field(
        200,
        ge=0,
        le=2000,
        description="Server VAD: start answering after this much silence, holding the answer back until the "
        "turn's full silence_duration_ms has passed (dropped if the user goes on). Hides recognition and the "
        "first words' synthesis inside the silence. 0 turns it off.",
    )
    first_spoken_chars: int = Field(
        16,
        ge=8,
        le=1000,
        description="The TTS service cuts a reply's first piece of speech at a word boundary beyond this many "
        "characters (three or four words), so the first words are heard sooner.",
    )
    echo_guard_ms: int = Field(
        300, ge=0, le=5000, description="Half-duplex: microphone input ignored this long after the assistant stops."
    )
    barge_in_min_speech_ms: int = Field(
        400,
        ge=0,
        le=5000,
        description="Full duplex: speech over the assistant pauses its voice at once; once the speech has "
        "lasted this long the reply is cancelled (a barge-in), and if it ends sooner (a cough, a short "
        "'mm-hm') the reply plays on.",
    )
    semantic_words: bool = Field(
        True,
        description="semantic_vad: the words join the sound in judging a pause. The LLM service scores the "
        "transcript of the pause (ScoreEndOfTurn); clearly unfinished words ('a table for') hold a turn the "
        "sound calls finished, clearly finished ones end a turn the sound is unsure of.",
    )
    echo_correlation: float = Field(
        0.65,
        gt=0,
        le=1,
        description="Full duplex: input whose spectrogram follows what was just played this closely (0-1) is "
        "taken for the assistant's own voice coming back, not the user. 1 turns the check off.",
    )

    ice_servers: list[str] = Field(
        default_factory=list,
        description="STUN/TURN URLs for WebRTC, e.g. stun:stun.example.org:3478. None by default: nothing "
        "outside this host is contacted.",
    )
    ice_username: str | None = Field(None, description="Username for the TURN servers in --ice-servers.")
    ice_credential: str | None = Field(None, description="Credential for the TURN servers in --ice-servers.")
    ice_host_addresses: list[str] = Field(
        default_factory=list,
        description="Limit the edge's ICE host candidates to these local addresses, e.g. 127.0.0.1 for "
        "loopback-only calls (local use and tests). Empty: every address of this host.",
    )

    drain_seconds: float = Field(5.0, ge=0, le=600, description="On SIGTERM: time sessions get to close cleanly.")
