"""The edge's connections to the model services: one gRPC channel to the VAD and one to the TTS
service, shared by all sessions, and one to each LLM replica (see pool.py).

A gRPC channel reconnects on its own with exponential backoff when a service goes away; calls
made while it is down fail at once with UNAVAILABLE (no ``wait_for_ready``), so a session can
tell its user straight away, and the next turn after the service is back works again.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy

import grpc
from parley.v1 import conversation_pb2_grpc, speech_pb2_grpc, vad_pb2_grpc

from services.edge.pool import LlmPool, Replica, ReplicaLimits
from services.edge.settings import EdgeSettings

# Reconnect soon after a model service restarts (one attempt a second at most: cheap for a
# service that is down, and the next turn after a restart finds the service again).
_BACKOFF_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 250),
    ("grpc.min_reconnect_backoff_ms", 250),
    ("grpc.max_reconnect_backoff_ms", 1000),
    ("grpc.keepalive_time_ms", 20_000),
    ("grpc.keepalive_timeout_ms", 10_000),
]

SERVICE_TITLES = {
    "vad": "voice activity detection",
    "llm": "speech recognition and language",
    "tts": "speech synthesis",
}


class ModelServices:
    """Channels and stubs for the VAD and TTS services, and the pool of LLM replicas.

    A session uses ``pinned(replica)``: the shared VAD and TTS, and the LLM replica it was
    admitted to.
    """

    def __init__(self, settings: EdgeSettings) -> None:
        self._options = [
            *_BACKOFF_OPTIONS,
            ("grpc.max_send_message_length", settings.max_message_bytes),
            ("grpc.max_receive_message_length", settings.max_message_bytes),
        ]
        # TLS to the model services when they serve it: trust the CA bundle given (their
        # certificates' issuer, or the self-signed certificates themselves).
        ca = settings.grpc_tls_ca.read_bytes() if settings.grpc_tls_ca is not None else None
        self._tls = grpc.ssl_channel_credentials(root_certificates=ca) if ca is not None else None
        self.channels = {
            "vad": self.channel(settings.vad_address),
            "tts": self.channel(settings.tts_address),
        }
        self.vad = vad_pb2_grpc.VoiceActivityServiceStub(self.channels["vad"])
        self.tts = speech_pb2_grpc.SpeechSynthesisServiceStub(self.channels["tts"])
        self.llm: conversation_pb2_grpc.ConversationServiceStub | None = None  # per session: pinned()
        self.pool = LlmPool(settings, self.channel)
        self.replica: Replica | None = None  # per session: pinned()

    def channel(self, address: str) -> grpc.aio.Channel:
        if self._tls is not None:
            return grpc.aio.secure_channel(address, self._tls, options=self._options)
        return grpc.aio.insecure_channel(address, options=self._options)

    def pinned(self, replica: Replica) -> ModelServices:
        """The services as one session sees them: its own LLM replica."""
        view = copy.copy(self)
        view.channels = {**self.channels, "llm": replica.channel}
        view.llm = replica.stub
        view.replica = replica
        return view

    @property
    def limits(self) -> ReplicaLimits:
        """What one turn may carry and ask for: the session's replica's limits, else every replica's."""
        if self.replica is not None and self.replica.limits is not None:
            return self.replica.limits
        return self.pool.limits

    async def ensure_ready(self, name: str, wait_seconds: float = 1.5) -> None:
        """Give a channel that is reconnecting a moment to come back before a call is made on it.

        A call on a channel in backoff fails at once with UNAVAILABLE even if the service has
        just come back; waiting briefly lets the first turn after a restart work. If the service
        is still down the call then fails, and the client is told.
        """
        channel = self.channels[name]
        if channel.get_state(try_to_connect=True) == grpc.ChannelConnectivity.READY:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(channel.channel_ready(), wait_seconds)

    async def close(self) -> None:
        await self.pool.close()
        for channel in self.channels.values():
            await channel.close()


class ServiceFailure(Exception):
    """A model service call failed; carries what to tell the client."""

    def __init__(self, service: str, error: grpc.aio.AioRpcError) -> None:
        self.service = service
        self.status = error.code()
        self.details = error.details() or ""
        super().__init__(f"{service}: {self.status.name}: {self.details}")

    @property
    def client_code(self) -> str:
        if self.status in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
            return "service_unavailable"
        if self.status == grpc.StatusCode.RESOURCE_EXHAUSTED:
            return "service_busy"
        if self.status == grpc.StatusCode.INVALID_ARGUMENT:
            return "invalid_input"
        return "service_error"

    @property
    def client_message(self) -> str:
        title = SERVICE_TITLES.get(self.service, self.service)
        if self.client_code == "service_unavailable":
            return f"The {title} service is unavailable right now; the edge keeps reconnecting. Please try again."
        if self.client_code == "service_busy":
            return f"The {title} service is busy ({self.details}). Please try again shortly."
        if self.client_code == "invalid_input":
            return f"The {title} service refused the input: {self.details}"
        return f"The {title} service failed ({self.status.name}). Please try again."
